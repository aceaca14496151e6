"""Serving benchmark: throughput, p50/p99 latency and the gain of dynamic batching.

Starts `kzoo serve` (in-process, 127.0.0.1, any free port) on an export tree and
loads its REST predict endpoint with `kzoo.serving.loadtest.run_load`, once per
`--max-batch` value (1 = no batching), and writes the numbers as JSON for
benchmarks/RESULTS.md. Without `--export`, it exports a small model of the zoo
(`--zoo cgan`, tiny sizes) into a temporary directory first.

    python benchmarks/serving.py --requests 3000 --clients 32 --max-batch 1,32 --rollout --out benchmarks/serving.json

`--rollout` adds a version rollout under load, as a deployment does it: the server
serves version 1 (TF Serving's latest policy, polling every `--poll-seconds`); after
`--rollout-after` seconds of load, version 2 (the same model, other weights, exported
beforehand) is published into the tree by one rename, as `kzoo export` publishes.
Each answer is classified by version (its output equals version 1's or version 2's),
so the report shows the errors (expected 0), the last answer of version 1, the first
of version 2, and the server's switch moment (`Repository.events`).

The client threads run on the same machine as the server: on a small machine the
numbers include the load generator's own CPU use.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def tiny_export(zoo_name, out, version=1, seed=None):
    from kzoo.export import export
    from kzoo.zoo import create_model, tiny_overrides

    if seed is not None:
        import keras

        keras.utils.set_random_seed(seed)
    model = create_model(zoo_name, **tiny_overrides(zoo_name))
    return export(model, name=zoo_name, out=out, formats="onnx", version=version)[0].name


def request_body(info, batch, seed=0):
    """A columnar predict body of `batch` items with inputs fitting each input's role."""
    from kzoo.card import sample_inputs

    size = (info.get("dynamic", {}).get("spatial_size") or {}).get("base")
    feeds = sample_inputs(info["inputs"], batch, np.random.default_rng(seed), size=size)
    return json.dumps({"inputs": {k: v.tolist() for k, v in feeds.items()}}).encode()


def bench(export_root, model, max_batches, requests, clients, batch, wait_ms, backend="onnx"):
    from kzoo.serving.loadtest import run_load
    from kzoo.serving.server import ModelServer

    runs = []
    for mb in max_batches:
        server = ModelServer(export_root, backend=backend, port=0, grpc_port=None, max_batch=mb,
                             batch_wait_ms=wait_ms if mb > 1 else 0).start(timeout=120)
        try:
            servable = server.repo.get(model)
            body = request_body(servable.info, batch)
            url = f"{server.rest_url}/v1/models/{model}:predict"
            run_load(url, body, requests=min(100, requests), clients=clients)  # warm-up
            stats = run_load(url, body, requests=requests, clients=clients)
            text = server.metrics.text().decode()
            count = _sample(text, "kzoo_serving_batch_size_count", model)
            rows = _sample(text, "kzoo_serving_batch_size_sum", model)
            stats.update(max_batch=mb, batch_wait_ms=wait_ms if mb > 1 else 0, rows_per_request=batch,
                         mean_rows_per_batch=round(rows / count, 2) if count else None)
            runs.append(stats)
            print(f"max_batch={mb:>3}: {stats['throughput_rps']} req/s, p50 {stats['p50_ms']} ms, "
                  f"p99 {stats['p99_ms']} ms, {stats['errors']} errors, "
                  f"{stats['mean_rows_per_batch']} rows/batch", flush=True)
        finally:
            server.stop()
    base = next((r for r in runs if r["max_batch"] == 1), None)
    for r in runs:
        r["batching_gain"] = (round(r["throughput_rps"] / base["throughput_rps"], 2)
                              if base and base["throughput_rps"] and r["throughput_rps"] else None)
    return runs


def rollout(zoo_name, requests, clients, after_s, poll_s, workdir):
    """Load version 1 of a tiny `zoo_name`, publish version 2 after `after_s` seconds;
    returns the load statistics with the switch moments (seconds after the load starts)."""
    import os
    import threading

    from kzoo.infer import OnnxModel
    from kzoo.serving.loadtest import run_load
    from kzoo.serving.server import ModelServer

    root, side = Path(workdir) / "rollout", Path(workdir) / "rollout-v2"
    model = tiny_export(zoo_name, root, version=1, seed=1)
    tiny_export(zoo_name, side, version=2, seed=2)
    info = OnnxModel(root / model / "1").info
    body = request_body(info, 1)
    feeds = {k: np.asarray(v, dtype=e["dtype"]) for e in info["inputs"]
             for k, v in json.loads(body)["inputs"].items() if k == e["name"]}
    expected = {v: OnnxModel(d / model / str(v)).run(**feeds) for v, d in ((1, root), (2, side))}

    def classify(text):
        out = json.loads(text)["outputs"]
        out = out if isinstance(out, dict) else {next(iter(expected[1])): out}
        err = {v: max(float(np.max(np.abs(np.asarray(out[k], np.float32) - e[k]))) for k in e)
               for v, e in expected.items()}
        return f"version {min(err, key=err.get)}"

    server = ModelServer(root, port=0, grpc_port=None, file_system_poll_wait_seconds=poll_s).start(timeout=120)
    try:
        url = f"{server.rest_url}/v1/models/{model}:predict"
        run_load(url, body, requests=min(50, requests), clients=clients)  # warm-up
        published = {}

        def publish():
            published["at"] = time.time()
            os.rename(side / model / "2", root / model / "2")  # one rename, as kzoo export publishes

        stats = {}
        timer = threading.Timer(after_s, publish)
        load = threading.Thread(target=lambda: stats.update(run_load(url, body, requests=requests,
                                                                     clients=clients, classify=classify)))
        load.start()
        timer.start()
        load.join()
        timer.join()
        events = {(v, what): t for t, name, v, what in server.repo.events if name == model}
    finally:
        server.stop()
    t0 = stats.pop("started_at")

    def rel(t):
        return None if t is None else round(t - t0, 3)

    stats.update(model=model, poll_seconds=poll_s, published_s=rel(published.get("at")),
                 v2_available_s=rel(events.get((2, "available"))), v1_unloaded_s=rel(events.get((1, "unloaded"))),
                 last_v1_answer_s=stats["timeline"].get("version 1", {}).get("last_s"),
                 first_v2_answer_s=stats["timeline"].get("version 2", {}).get("first_s"))
    print(f"rollout: {stats['ok']} ok, {stats['errors']} errors; v2 published at {stats['published_s']} s, "
          f"available at {stats['v2_available_s']} s; last v1 answer {stats['last_v1_answer_s']} s, "
          f"first v2 answer {stats['first_v2_answer_s']} s", flush=True)
    return stats


def _sample(text, name, model):
    import re

    m = re.search(rf'^{name}\{{model_name="{re.escape(model)}"\}} (\S+)$', text, re.M)
    return float(m[1]) if m else 0.0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--export", help="export tree (default: a tiny export of --zoo in a temp dir)")
    p.add_argument("--model", help="served model name (default: --zoo)")
    p.add_argument("--zoo", default="cgan", help="zoo model to export when --export is not given")
    p.add_argument("--backend", default="onnx", choices=("onnx", "savedmodel"))
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--batch", type=int, default=1, help="rows per request (default 1)")
    p.add_argument("--max-batch", default="1,32", help="comma-separated max batch sizes (1: no batching)")
    p.add_argument("--batch-wait-ms", type=float, default=2.0)
    p.add_argument("--out", default="benchmarks/serving.json")
    p.add_argument("--rollout", action="store_true", help="also roll out a new version under load (tiny --zoo)")
    p.add_argument("--rollout-requests", type=int, default=1000, help="requests of the rollout run")
    p.add_argument("--rollout-after", type=float, default=2.0, help="seconds of load before version 2 appears")
    p.add_argument("--poll-seconds", type=float, default=1.0, help="the server's file-system poll (TF default 1)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.export) if args.export else Path(tmp) / "export"
        model = args.model or (args.zoo if args.export else tiny_export(args.zoo, root))
        started = time.time()
        runs = bench(root, model, [int(x) for x in args.max_batch.split(",")], args.requests, args.clients,
                     args.batch, args.batch_wait_ms, args.backend)
        rolled = (rollout(args.zoo, args.rollout_requests, args.clients, args.rollout_after, args.poll_seconds, tmp)
                  if args.rollout else None)
    result = {"benchmark": "kzoo serve REST predict", "model": model, "backend": args.backend,
              "export": args.export or f"tiny {args.zoo} (tiny_overrides)", "host": "127.0.0.1",
              "machine": {"platform": platform.platform(), "python": platform.python_version(),
                          "cpus": __import__("os").cpu_count()},
              "date": time.strftime("%Y-%m-%d %H:%M:%S"), "wall_s": round(time.time() - started, 1), "runs": runs}
    if rolled is not None:
        result["rollout"] = rolled
    from kzoo.io import write_json

    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
