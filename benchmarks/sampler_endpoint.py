"""One sampler request vs the client-side loop over the eps endpoint (issue 28).

For an exported DDPM (`kzoo export ddpm-digits` writes `ddpm-digits` and
`ddpm-digits_sampler`), the same DDIM sampling (same steps, same seeded noise) two ways
on each runtime:

- `loop`: the client runs `kzoo.diffusion.sample` and calls the eps endpoint once per step
  (`OnnxModel.diffusion_sample` on ONNX Runtime; the same loop over the eps SavedModel's
  `serving_default` for TensorFlow);
- `sampler`: one call of the sampler endpoint (`OnnxModel.sampler_sample`; its SavedModel).

In-process, so the figures leave out the network round trips a served loop also pays
(one per step); `measure_served` adds those through `kzoo serve` REST. Reported per
batch size: the best-of-`repeats` latency of one batch and images/s, and the largest
difference between the two ways' images (same noise). Writes its own JSON file
(default benchmarks/sampler_endpoint.json); never RESULTS.md/results.json.

    python -m benchmarks.sampler_endpoint EXPORT_ROOT NAME [--steps 20] [--batches 1,16]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _best(fn, repeats):
    fn()  # warm-up (graph building, allocator)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _savedmodel_loop(eps_runner, info):
    """`eps_fn` over the eps SavedModel, for `kzoo.diffusion.sample`."""
    t_name = next(e["name"] for e in info["inputs"] if e["role"] == "timestep")
    x_name = next(e["name"] for e in info["inputs"] if e["role"] != "timestep")
    out_name = info["outputs"][0]["name"]
    return lambda x, t: eps_runner.run(**{x_name: x, t_name: t})[out_name]


def measure(root, name, steps=20, batches=(1, 16), eta=0.0, repeats=3, seed=0):
    from kzoo.diffusion import from_info, sample
    from kzoo.infer import OnnxModel
    from kzoo.serving.repository import SavedModelRunner

    root = Path(root)
    eps_onnx, smp_onnx = OnnxModel(root / name), OnnxModel(root / f"{name}_sampler")
    eps_sm, smp_sm = SavedModelRunner(eps_onnx.path), SavedModelRunner(smp_onnx.path)
    schedule, options = from_info(eps_onnx.info["diffusion"])
    rows = []
    for batch in batches:
        ways = {
            ("onnxruntime", "loop"): lambda: eps_onnx.diffusion_sample(
                batch, seed=seed, sampler="ddim", steps=steps, eta=eta, raw=True, batch_size=None),
            ("onnxruntime", "sampler"): lambda: smp_onnx.sampler_sample(
                batch, seed=seed, sampler="ddim", steps=steps, eta=eta, raw=True),
            ("savedmodel", "loop"): lambda: sample(
                _savedmodel_loop(eps_sm, eps_sm.info), (batch, *eps_onnx.inputs["x_t"]["shape"][1:]),
                schedule=schedule, sampler="ddim", steps=steps, eta=eta, options=options, seed=seed),
            ("savedmodel", "sampler"): lambda: smp_sm.sampler_sample(
                batch, seed=seed, sampler="ddim", steps=steps, eta=eta, raw=True),
        }
        results = {k: _best(fn, repeats) for k, fn in ways.items()}
        for runtime in ("onnxruntime", "savedmodel"):
            loop_s, loop_x = results[(runtime, "loop")]
            smp_s, smp_x = results[(runtime, "sampler")]
            rows.append({"runtime": runtime, "batch": batch, "steps": steps, "sampler": "ddim", "eta": eta,
                         "loop_latency_s": loop_s, "sampler_latency_s": smp_s,
                         "loop_images_per_s": batch / loop_s, "sampler_images_per_s": batch / smp_s,
                         "speedup": loop_s / smp_s,
                         "max_abs_difference": float(np.abs(loop_x - smp_x).max())})
    return rows


def measure_served(root, name, steps=20, batches=(1, 16), eta=0.0, repeats=3, seed=0):
    """The same two ways through `kzoo serve` (REST, JSON on 127.0.0.1): the client loop
    posts one eps request per step, the sampler one request per batch."""
    import requests

    from kzoo.diffusion import from_info, sample
    from kzoo.infer import OnnxModel
    from kzoo.serving.server import ModelServer

    root = Path(root)
    eps = OnnxModel(root / name)
    schedule, options = from_info(eps.info["diffusion"])
    shape = eps.inputs["x_t"]["shape"][1:]
    rows = []
    for backend in ("onnx", "savedmodel"):
        with ModelServer(root, backend=backend, port=0, grpc_port=None) as server:
            def post(model, inputs):
                r = requests.post(f"{server.rest_url}/v1/models/{model}:predict", json={"inputs": inputs},
                                  timeout=600)
                r.raise_for_status()
                return np.asarray(r.json()["outputs"], np.float32)

            def eps_fn(x, t):
                return post(name, {"x_t": x.tolist(), "t": t.tolist()})

            for batch in batches:
                def loop():
                    return sample(eps_fn, (batch, *shape), schedule=schedule, sampler="ddim", steps=steps,
                                  eta=eta, options=options, seed=seed)

                def one():
                    x = np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)
                    return post(f"{name}_sampler", {"noise": x.tolist(), "step_noise": np.zeros(  # one unused draw:
                        (batch, 1, *shape)).tolist(), "steps": [steps] * batch, "eta": [eta] * batch,
                        "sampler": [0] * batch})

                (loop_s, loop_x), (smp_s, smp_x) = _best(loop, repeats), _best(one, repeats)
                rows.append({"runtime": f"kzoo serve REST ({backend})", "batch": batch, "steps": steps,
                             "sampler": "ddim", "eta": eta, "loop_latency_s": loop_s,
                             "sampler_latency_s": smp_s, "loop_images_per_s": batch / loop_s,
                             "sampler_images_per_s": batch / smp_s, "speedup": loop_s / smp_s,
                             "max_abs_difference": float(np.abs(loop_x - smp_x).max())})
    return rows


def main(argv=None):
    from benchmarks.machine import describe

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root")
    p.add_argument("name")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batches", default="1,16")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(Path(__file__).with_name("sampler_endpoint.json")))
    a = p.parse_args(argv)
    batches = [int(b) for b in a.batches.split(",")]
    rows = measure(a.root, a.name, a.steps, batches, repeats=a.repeats)
    rows += measure_served(a.root, a.name, a.steps, batches, repeats=a.repeats)
    result = {"model": a.name, "machine": describe(), "rows": rows,
              "command": "python -m benchmarks.sampler_endpoint " + " ".join(
                  sys.argv[1:] if argv is None else argv)}
    from kzoo.io import write_json

    write_json(a.out, result)
    for r in rows:
        print(f"{r['runtime']:30s} batch {r['batch']:3d}: loop {r['loop_latency_s'] * 1e3:8.1f} ms "
              f"({r['loop_images_per_s']:7.1f} img/s)  sampler {r['sampler_latency_s'] * 1e3:8.1f} ms "
              f"({r['sampler_images_per_s']:7.1f} img/s)  x{r['speedup']:.2f}  "
              f"max diff {r['max_abs_difference']:.2g}")


if __name__ == "__main__":
    main()
