"""Parity figures: how far an exported artifact's outputs are from Keras'.

For each float output: the max absolute error and that error relative to the
range of the Keras output (max - min over the batch). For int outputs (argmax labels): the fraction of
elements that differ. An artifact passes when every float output's relative
error is within `tolerance` and at most `LABEL_MISMATCH` of its labels differ
(argmax may flip where two classes are within rounding of each other).

A network that drops out at test time (the junyanz authors' mode,
`kzoo.layers.test_mode`) gives a new output at every call, so its artifacts are
compared by distribution (`compare_draws`): for N draws of the same input from each
side, the per-element means must agree within their standard errors (the mean of
z^2 = (mean difference)^2 / (var_a / N + var_b / N) over elements is about 1 for equal
distributions; it must be at most `DRAW_Z2`) and the average spread must agree
(ratio of mean standard deviations within `DRAW_SPREAD`). An artifact that lost
its dropout has spread ratio 0; one that lost the batch statistics moves the means
by many standard errors.
"""

from __future__ import annotations

import numpy as np

from kzoo.errors import KzooError

LABEL_MISMATCH = 0.01
DRAW_Z2 = 2.0
DRAW_SPREAD = (0.8, 1.25)


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


def compare_draws(reference, candidate, spec):
    """{output: figures} of N draws of one input from each side (see module docstring)."""
    figures = {}
    for e in spec["outputs"]:
        ref = np.asarray(reference[e["name"]], np.float64)
        got = np.asarray(candidate[e["name"]], np.float64)
        if ref.shape != got.shape:
            figures[e["name"]] = {"shape_mismatch": [list(ref.shape), list(got.shape)]}
            continue
        n = len(ref)
        span = max(float(ref.max() - ref.min()), 1e-6)
        var_r, var_g = ref.var(0, ddof=1), got.var(0, ddof=1)
        diff = ref.mean(0) - got.mean(0)
        floor = (1e-6 * span) ** 2  # elements that do not vary (saturated tanh) compare exactly
        spread = float(np.sqrt(var_r).mean())
        figures[e["name"]] = {
            "draws": n, "mean_z2": float(np.mean(diff ** 2 / ((var_r + var_g) / n + floor))),
            "spread_ratio": float(np.sqrt(var_g).mean() / spread) if spread > 0 else 1.0,
            "max_abs_mean": float(np.abs(diff).max()), "spread": spread, "output_range": span,
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
        elif "mean_z2" in f:
            lo, hi = DRAW_SPREAD
            if f["mean_z2"] > DRAW_Z2:
                bad.append(f"{name}: over {f['draws']} dropout draws the mean outputs differ by "
                           f"{f['mean_z2']:.3g} squared standard errors on average (at most {DRAW_Z2})")
            if not lo <= f["spread_ratio"] <= hi:
                bad.append(f"{name}: the outputs vary {f['spread_ratio']:.3g} times as much as "
                           f"Keras' over {f['draws']} dropout draws (allowed {lo}..{hi})")
        elif f["max_rel"] > tolerance:
            bad.append(f"{name}: max error {f['max_abs']:.3g} = {f['max_rel']:.3g} of the output "
                       f"range (tolerance {tolerance:g})")
    return bad


class ParityError(KzooError):
    """An exported artifact's outputs differ from Keras' beyond the tolerance."""


def onnx_runner(path):
    """`fn(**numpy inputs) -> {name: numpy}` on onnxruntime's CPU provider."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise KzooError("the parity check needs onnxruntime: pip install 'kzoo[cpu]' "
                        "(or 'kzoo[gpu]')") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def run(**feeds):
        return dict(zip(names, session.run(names, feeds)))

    return run


def versions():
    """The library versions an export records (kzoo.json `versions`)."""
    import keras
    import tensorflow as tf

    import kzoo

    out = {"kzoo": kzoo.__version__, "keras": keras.__version__, "tensorflow": tf.__version__}
    for mod in ("tf2onnx", "onnx", "onnxruntime"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out
