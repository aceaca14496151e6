"""Parity figures: how far an exported artifact's outputs are from Keras'.

For each float output: the max absolute error and that error relative to the
range of the Keras output (max - min over the batch). For int outputs (argmax labels): the fraction of
elements that differ. An artifact passes when every float output's relative
error is within `tolerance` and at most `LABEL_MISMATCH` of its labels differ
(argmax may flip where two classes are within rounding of each other).
"""

from __future__ import annotations

import numpy as np

LABEL_MISMATCH = 0.01


def compare(reference, candidate, spec):
    """{output: figures} for one set of inputs (see module docstring)."""
    figures = {}
    for e in spec["outputs"]:
        ref = np.asarray(reference[e["name"]])
        got = np.asarray(candidate[e["name"]])
        if ref.shape != got.shape:
            figures[e["name"]] = {"shape_mismatch": [list(ref.shape), list(got.shape)]}
            continue
        if np.issubdtype(ref.dtype, np.integer):
            figures[e["name"]] = {"mismatch_fraction": float(np.mean(ref != got))}
            continue
        ref, got = ref.astype(np.float64), got.astype(np.float64)
        span = max(float(ref.max() - ref.min()) if ref.size else 0.0, 1e-6)
        err = float(np.max(np.abs(ref - got))) if ref.size else 0.0
        figures[e["name"]] = {"max_abs": err, "max_rel": err / span, "output_range": span,
                              "finite": bool(np.all(np.isfinite(got)))}
    return figures


def merge(*figure_sets):
    """Worst case over several `compare` results (several batches / sizes)."""
    out = {}
    for figures in figure_sets:
        for name, f in figures.items():
            cur = out.setdefault(name, dict(f))
            for k, v in f.items():
                if k in ("max_abs", "max_rel", "mismatch_fraction"):
                    cur[k] = max(cur.get(k, 0.0), v)
                elif k == "finite":
                    cur[k] = cur.get(k, True) and v
                elif k == "shape_mismatch":
                    cur[k] = v
    return out


def failures(figures, tolerance):
    """Human-readable reasons why `figures` fail `tolerance` (empty list: pass)."""
    bad = []
    for name, f in figures.items():
        if "shape_mismatch" in f:
            bad.append(f"{name}: shape {f['shape_mismatch'][1]} != Keras {f['shape_mismatch'][0]}")
        elif "mismatch_fraction" in f:
            if f["mismatch_fraction"] > LABEL_MISMATCH:
                bad.append(f"{name}: {f['mismatch_fraction']:.2%} of labels differ")
        elif not f["finite"]:
            bad.append(f"{name}: non-finite values")
        elif f["max_rel"] > tolerance:
            bad.append(f"{name}: max error {f['max_abs']:.3g} = {f['max_rel']:.3g} of the output "
                       f"range (tolerance {tolerance:g})")
    return bad
