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

`--abuse` runs the hostile requests of issue 25 against a `kzoo serve` subprocess
(default flags: the machine-derived memory budget) while `--abuse-clients` normal
clients keep calling a small cGAN request, and reports each hostile request's status
and message, the server's peak RSS (sampled from /proc every 20 ms) and its RSS
after each request (memory handed back), the normal clients' served requests and
errors. It exports the full-size `cgan` and `unet` of the zoo (random weights) unless
`--abuse-export` names a tree holding them; results go to `--abuse-out`.

    python benchmarks/serving.py --abuse --abuse-out benchmarks/serving_abuse.json

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


def _png(width, height):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (width, height), 0).save(buf, format="PNG")
    return buf.getvalue()


def _bomb_header(width, height):
    """A PNG declaring width x height whose data is empty (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


class RssSampler:
    """Peak and current RSS of a process, sampled every `interval` s in a thread."""

    def __init__(self, pid, interval=0.02):
        import threading

        self.pid, self.interval, self.peak, self.samples = pid, interval, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        from kzoo.memory import rss_bytes

        while not self._stop.wait(self.interval):
            rss, _ = rss_bytes(self.pid)
            if rss:
                self.peak, self.samples = max(self.peak, rss), self.samples + 1

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()

    def now(self):
        from kzoo.memory import rss_bytes

        return rss_bytes(self.pid)[0]


def abuse(export_root, clients, workdir, flags=()):
    """The hostile requests under load (see module docstring); returns the report."""
    import base64
    import socket
    import subprocess
    import threading

    import grpc
    import requests as http
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from kzoo.memory import default_request_budget, physical_memory_bytes
    from kzoo.serving import codec
    from kzoo.serving.loadtest import run_load

    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    port, grpc_port = free_port(), free_port()
    log = open(Path(workdir) / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "kzoo.cli", "serve", str(export_root), "--port", str(port),
                             "--grpc-port", str(grpc_port), *flags], stdout=log, stderr=subprocess.STDOUT,
                            env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    rest = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if http.get(f"{rest}/v1/models/unet", timeout=1).status_code == 200:
                    break
            except http.RequestException:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"kzoo serve exited: {open(Path(workdir) / 'serve.log').read()[-2000:]}")
            time.sleep(0.5)
        sampler = RssSampler(proc.pid).start()
        idle_rss = sampler.now()
        rng = np.random.default_rng(0)
        info = json.loads(next(Path(export_root, "cgan").glob("*/kzoo.json")).read_text())
        latent = next(e["shape"][1] for e in info["inputs"] if e["name"] == "z")

        def cgan_json(n):
            return json.dumps({"inputs": {"z": rng.standard_normal((n, latent)).round(3).tolist(),
                                          "label": (np.arange(n) % 10).tolist()}}).encode()

        def images_json(data):
            return json.dumps({"signature_name": "serving_images",
                               "instances": [{"b64": base64.b64encode(data).decode()}]}).encode()

        def rest_call(model, body, timeout=600):
            r = http.post(f"{rest}/v1/models/{model}:predict", data=body, timeout=timeout)
            return r.status_code, (r.json().get("error", "") if r.status_code != 200 else f"{len(r.content)} bytes")

        def grpc_call(n, timeout=600):
            req = predict_pb2.PredictRequest()
            req.model_spec.name = "cgan"
            req.inputs["z"].CopyFrom(codec.tensor_proto(rng.standard_normal((n, latent)).astype(np.float32)))
            req.inputs["label"].CopyFrom(codec.tensor_proto((np.arange(n) % 10).astype(np.int32)))
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}", options=[
                    ("grpc.max_send_message_length", 2**31 - 1), ("grpc.max_receive_message_length", 2**31 - 1)]) as ch:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
                try:
                    out = stub.Predict(req, timeout=timeout)
                    return "OK", f"{out.ByteSize()} bytes"
                except grpc.RpcError as err:
                    return err.code().name, err.details()

        def hang_up(body, after_s):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"POST /v1/models/cgan:predict HTTP/1.1\r\nHost: x\r\n"
                             + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                time.sleep(after_s)
            return "hung up", f"after {after_s} s"

        hostile = [
            ("REST 4096x4096 gray PNG -> unet serving_images", lambda: rest_call("unet", images_json(_png(4096, 4096)))),
            ("REST 8000x8000 gray PNG -> unet serving_images", lambda: rest_call("unet", images_json(_png(8000, 8000)))),
            ("REST PNG header of 100000x100000 (bomb)", lambda: rest_call("unet", images_json(_bomb_header(100_000, 100_000)))),
            ("REST 2048x2048 gray PNG -> unet serving_images", lambda: rest_call("unet", images_json(_png(2048, 2048)))),
            ("REST 512x512 gray PNG -> unet serving_images", lambda: rest_call("unet", images_json(_png(512, 512)))),
            ("gRPC 70,000-row cGAN", lambda: grpc_call(70_000)),
            ("REST 10,000-row cGAN", lambda: rest_call("cgan", cgan_json(10_000))),
            ("REST 1,000-row cGAN", lambda: rest_call("cgan", cgan_json(1_000))),
            ("gRPC 2,000-row cGAN", lambda: grpc_call(2_000)),
            ("gRPC 5,000-row cGAN, 1 s deadline", lambda: grpc_call(5_000, timeout=1.0)),
            ("REST 1,000-row cGAN, client hangs up after 0.5 s", lambda: hang_up(cgan_json(1_000), 0.5)),
        ]
        normal_body = cgan_json(1)
        load, done = {}, threading.Event()

        def normal_clients():
            total = {"ok": 0, "errors": 0, "statuses": {}, "rounds": 0}
            while not done.is_set():
                stats = run_load(f"{rest}/v1/models/cgan:predict", normal_body, requests=clients * 10, clients=clients)
                total["ok"] += stats["ok"]
                total["first_error"] = total.get("first_error") or stats["first_error"]
                total["errors"] += stats["errors"]
                total["rounds"] += 1
                for k, v in stats["statuses"].items():
                    total["statuses"][str(k)] = total["statuses"].get(str(k), 0) + v
                total.setdefault("p99_ms_worst", 0)
                total["p99_ms_worst"] = max(total["p99_ms_worst"], stats["p99_ms"] or 0)
            load.update(total)

        loader = threading.Thread(target=normal_clients)
        started = time.time()
        loader.start()
        results = []
        for what, call in hostile:
            before, t = sampler.now(), time.perf_counter()
            sampler_peak_before, sampler.peak = sampler.peak, 0
            status, message = call()
            seconds = time.perf_counter() - t
            time.sleep(2.0)  # the server finishes or stops the work, hands memory back
            results.append({"request": what, "status": status, "message": str(message)[:300],
                            "seconds": round(seconds, 2), "rss_before_mb": round(before / 2**20),
                            "peak_rss_mb": round(sampler.peak / 2**20), "rss_after_mb": round(sampler.now() / 2**20)})
            sampler.peak = max(sampler.peak, sampler_peak_before)
            print(f"{what}: {status} in {seconds:.1f} s; RSS {results[-1]['rss_before_mb']} -> peak "
                  f"{results[-1]['peak_rss_mb']} -> {results[-1]['rss_after_mb']} MiB; {str(message)[:140]}", flush=True)
        done.set()
        loader.join()
        sampler.stop()
        alive = proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    peak = max([r["peak_rss_mb"] for r in results] + [round(sampler.peak / 2**20)])
    stopped = [line.strip() for line in open(Path(workdir) / "serve.log") if "stopped" in line]
    report = {"clients": clients, "seconds": round(time.time() - started, 1), "server_alive": alive,
              "machine_memory_mb": round(physical_memory_bytes() / 2**20),
              "request_budget_mb": round(default_request_budget() / 2**20), "flags": list(flags),
              "idle_rss_mb": round(idle_rss / 2**20), "peak_rss_mb": peak, "hostile": results, "normal_clients": load,
              "server_log_stopped": stopped}
    print(f"server alive: {alive}; peak RSS {peak} MiB (idle {report['idle_rss_mb']}); normal clients: "
          f"{load.get('ok')} ok, {load.get('errors')} errors {load.get('statuses')}", flush=True)
    return report


ARENA_PROBE = """
import sys, numpy as np, onnxruntime as ort
from kzoo.infer import session_options
from kzoo.memory import rss_bytes, release_memory
path, mode, side = sys.argv[1], sys.argv[2], int(sys.argv[3])
opts = session_options(arena=mode != "arena off")
s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
run = ort.RunOptions()
if mode == "arena + shrinkage":
    run.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
i = s.get_inputs()[0]
s.run(None, {i.name: np.zeros((1, 64, 64, i.shape[-1]), np.float32)})
r0, _ = rss_bytes()
open("/proc/self/clear_refs", "w").write("5")  # resets the peak (VmHWM)
out = s.run(None, {i.name: np.zeros((1, side, side, i.shape[-1]), np.float32)}, run)
_, peak = rss_bytes()
del out
release_memory()
r2, _ = rss_bytes()
print((peak - r0) >> 20, (r2 - r0) >> 20)
"""


def arena(model_dir, side):
    """Peak and kept RSS of one `side` x `side` run of an image model on onnxruntime, with
    the CPU arena (kzoo's former setting), the arena and its shrinkage run option
    (`memory.enable_memory_arena_shrinkage`, onnxruntime_run_options_config_keys.h), and
    without the arena (what kzoo serve and kzoo predict run with now); a process each."""
    import subprocess

    from kzoo.infer import read_info
    from kzoo.memory import activation_profile

    path = Path(model_dir) / "model.onnx"
    estimate = activation_profile(path, read_info(model_dir)).peak(1, side * side) >> 20
    rows = []
    for mode in ("arena", "arena + shrinkage", "arena off"):
        out = subprocess.run([sys.executable, "-c", ARENA_PROBE, str(path), mode, str(side)], capture_output=True,
                             text=True, check=True, env={**__import__("os").environ,
                                                         "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        peak, kept = map(int, out.stdout.split()[-2:])
        rows.append({"mode": mode, "side": side, "peak_mb": peak, "kept_after_mb": kept, "estimate_mb": estimate})
        print(f"{mode}: {side}x{side} peak +{peak} MiB (estimated {estimate}), kept after the run +{kept} MiB",
              flush=True)
    return rows


def abuse_export(out):
    """Full-size cgan and unet of the zoo (random weights): the models of issue 25."""
    from kzoo.export import export
    from kzoo.zoo import create_model

    for name in ("cgan", "unet"):
        if not (Path(out) / name).is_dir():
            export(create_model(name), name=name, out=out, formats="onnx")
    return Path(out)


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
    p.add_argument("--abuse", action="store_true", help="only the load-and-abuse run (see module docstring)")
    p.add_argument("--abuse-export", help="tree with full-size cgan and unet (default: exported into a temp dir)")
    p.add_argument("--abuse-clients", type=int, default=4, help="normal clients during the abuse run")
    p.add_argument("--abuse-out", default="benchmarks/serving_abuse.json")
    p.add_argument("--arena-side", type=int, default=1024, help="image side of the arena comparison (U-Net)")
    p.add_argument("--abuse-budget", type=int, default=2 << 30,
                   help="the server's --max-request-memory-bytes in the abuse run (default 2 GiB, so that the "
                        "U-Net requests it serves finish in seconds on 2 cores; 0: the machine-derived default)")
    args = p.parse_args(argv)
    if args.abuse:
        from kzoo.io import write_json

        with tempfile.TemporaryDirectory() as tmp:
            root = Path(args.abuse_export) if args.abuse_export else abuse_export(Path(tmp) / "export")
            flags = ("--max-request-memory-bytes", str(args.abuse_budget)) if args.abuse_budget else ()
            report = {"arena": arena(next((root / "unet").glob("*/kzoo.json")).parent, args.arena_side)}
            report.update(abuse(root, args.abuse_clients, tmp, flags))
        report.update(benchmark="kzoo serve load-and-abuse (issue 25)", date=time.strftime("%Y-%m-%d %H:%M:%S"),
                      machine={"platform": platform.platform(), "python": platform.python_version(),
                               "cpus": __import__("os").cpu_count()})
        write_json(args.abuse_out, report)
        print(f"wrote {args.abuse_out}")
        return 0
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
