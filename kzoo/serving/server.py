"""`ModelServer`: an export tree served over TF Serving's REST and gRPC APIs.

One asyncio event loop runs uvicorn (the REST app of `kzoo.serving.rest`) and a
grpc.aio server (`kzoo.serving.grpc_service`); both call `ModelServer.predict`,
which decodes, validates and plans a request in the thread pool, queues it on the
version's `Batcher` (dynamic batching, bounded queue), post-processes the outputs
and encodes the response in the thread pool. The event loop itself only moves bytes.

Memory: every request is planned within its model's budget before anything large
is decoded or run (`Servable.plan`: `max_request_memory_bytes`, default 1/4 of the
machine's memory, or the model's `serving.json`); the estimates of the requests
running at once share a pool of `max_memory_bytes` (default 1/2 of the machine's
memory; a request that does not fit now gets RESOURCE_EXHAUSTED / 429, retry
later). After a request of more than `RELEASE_AFTER_BYTES` the freed heap is
handed back to the system (`kzoo.memory.release_memory`). A request whose client
is gone (gRPC deadline or cancel, REST hang-up) is cancelled: dropped from the
queue, or stopped at its next chunk or tile.

A background thread keeps the served versions in step with the file system, as
TF Serving does: every `file_system_poll_wait_seconds` it lets the `Repository`
load new versions (in that thread, while the old ones keep serving), switch,
and unload removed ones; every `model_config_file_poll_wait_seconds` it re-reads
`models.config`.

Example::

    server = ModelServer("export", port=0, grpc_port=0).start()   # in a thread
    server.rest_url, server.grpc_url
    # ('http://127.0.0.1:41235', 'grpc://127.0.0.1:40121')
    server.stop()

`kzoo serve` runs `ModelServer(...).run()` in the foreground (Ctrl-C stops it).

References:
    TF Serving model server flags and defaults: tensorflow_serving/model_servers/main.cc.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from kzoo.errors import KzooError
from kzoo.infer import Stopped
from kzoo.memory import MemoryPool, check_budget, fmt_bytes, physical_memory_bytes, release_memory
from kzoo.serving.batching import Batcher
from kzoo.serving.config import LATEST
from kzoo.serving.errors import ServingError, as_serving_error
from kzoo.serving.metrics import Metrics
from kzoo.serving.repository import Repository

log = logging.getLogger("kzoo.serving")
DEFAULT_MAX_BODY = 16 * 1024 * 1024
GRPC_MAX_MESSAGE = 2**31 - 1  # TF Serving: grpc ServerBuilder::SetMaxMessageSize(kint32max)
DEFAULT_MAX_TENSOR_BYTES = 1 << 30
RELEASE_AFTER_BYTES = 64 << 20  # requests estimated above this hand freed memory back after


def _uvicorn_server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, leaving signals to ModelServer (uvicorn re-raises them after
        shutdown, which would end `kzoo serve` with a traceback-free but non-zero status)."""

        @contextlib.contextmanager
        def capture_signals(self):
            yield

    return Server


class ModelServer:
    """Serves the models of an export tree or a `models.config` (see module docstring).

    Args:
        root: the export tree (`export/`); every model directory is served.
        backend: `onnx` (onnxruntime), `openvino` or `savedmodel` (TensorFlow); None: each
            version's recorded runtime (`kzoo.runtime.default_runtime`), else onnxruntime.
        host: str. Interface to listen on; 127.0.0.1 unless told otherwise.
        port: int. REST port (0: any free port).
        grpc_port: int or None. gRPC port (0: any free port; None: no gRPC).
        max_batch: int. Most rows run together (1: no batching).
        batch_wait_ms: float. How long the oldest request waits for others.
        max_queue: int. Requests waiting per version before 429 / RESOURCE_EXHAUSTED.
        max_body_bytes: int. Largest REST body.
        threads: int. Worker threads for decoding and running models.
        config_file: str. A TF Serving `models.config` (models, version policies,
            labels); replaces `root`.
        version_policy: tuple. Policy of the models found under `root`
            (`kzoo.serving.config.parse_policy`; default: the latest version).
        file_system_poll_wait_seconds: float. Interval of the version poll (TF
            Serving's default 1; 0: poll once at start; < 0: never).
        model_config_file_poll_wait_seconds: float. Interval of re-reading
            `config_file` (0: never, TF Serving's default).
        grpc_max_message_bytes: int. Largest gRPC message in and out (TF Serving: 2 GiB - 1).
        max_tensor_bytes: int. Largest decoded size of one request's tensors, checked
            against each tensor's declared shape before anything is allocated.
        body_timeout_s: float. Time allowed for a REST body to arrive (408 after).
        header_timeout_s: float. Time allowed for a request's headers (the
            connection is closed after).
        max_request_memory_bytes: int or None. Estimated memory one request may use
            (None: 1/4 of the machine's memory; a model's `serving.json` overrides it).
        max_memory_bytes: int or None. Estimated memory of all requests running at
            once (None: the larger of 1/2 of the machine's memory and one request's).
        max_response_bytes: int or None. Largest response (REST body or gRPC message),
            refused before it is built (None: `grpc_max_message_bytes`).
    """

    def __init__(self, root="export", *, backend=None, host="127.0.0.1", port=8501, grpc_port=8500,
                 max_batch=32, batch_wait_ms=2.0, max_queue=256, max_body_bytes=DEFAULT_MAX_BODY,
                 threads=None, config_file=None, version_policy=LATEST, file_system_poll_wait_seconds=1.0,
                 model_config_file_poll_wait_seconds=0.0, grpc_max_message_bytes=GRPC_MAX_MESSAGE,
                 max_tensor_bytes=DEFAULT_MAX_TENSOR_BYTES, body_timeout_s=30.0, header_timeout_s=10.0,
                 max_request_memory_bytes=None, max_memory_bytes=None, max_response_bytes=None):
        for flag, value in (("--port", port), ("--grpc-port", grpc_port)):
            if value is not None and not (isinstance(value, int) and 0 <= value <= 65535):
                raise KzooError(f"{flag} must be a TCP port from 0 (any free) to 65535, got {value}")
        for flag, value, low in (("--max-batch", max_batch, 1), ("--max-queue", max_queue, 1),
                                 ("--max-body-bytes", max_body_bytes, 1), ("--batch-wait-ms", batch_wait_ms, 0),
                                 ("--grpc-max-message-bytes", grpc_max_message_bytes, 1024),
                                 ("--max-tensor-bytes", max_tensor_bytes, 1),
                                 ("--body-timeout-seconds", body_timeout_s, 0.001),
                                 ("--header-timeout-seconds", header_timeout_s, 0.001),
                                 ("--model-config-file-poll-wait-seconds", model_config_file_poll_wait_seconds, 0)):
            if not value >= low:  # (nan too)
                raise KzooError(f"{flag} must be >= {low}, got {value}")
            if not math.isfinite(value):
                raise KzooError(f"{flag} must be a finite number, got {value}")
        if grpc_max_message_bytes > GRPC_MAX_MESSAGE:
            raise KzooError(f"--grpc-max-message-bytes must be <= {GRPC_MAX_MESSAGE}, got {grpc_max_message_bytes}")
        self.host, self.port, self.grpc_port = host, port, grpc_port
        self.max_body_bytes, self.max_tensor_bytes = int(max_body_bytes), int(max_tensor_bytes)
        self.grpc_max_message_bytes = int(grpc_max_message_bytes)
        self.max_request_memory_bytes = check_budget(max_request_memory_bytes, "--max-request-memory-bytes")
        self.pool = MemoryPool(max(self.max_request_memory_bytes, check_budget(
            max_memory_bytes if max_memory_bytes is not None else physical_memory_bytes() // 2,
            "--max-memory-bytes")))
        if max_response_bytes is not None and not (isinstance(max_response_bytes, int) and max_response_bytes >= 1):
            raise KzooError(f"--max-response-bytes must be a whole number >= 1, got {max_response_bytes}")
        self.max_response_bytes = int(max_response_bytes or grpc_max_message_bytes)
        self.body_timeout_s, self.header_timeout_s = float(body_timeout_s), float(header_timeout_s)
        self.poll_s, self.config_poll_s = file_system_poll_wait_seconds, model_config_file_poll_wait_seconds
        self.batching = dict(max_batch=max_batch, wait_s=batch_wait_ms / 1000.0, max_queue=max_queue)
        self.metrics = Metrics()
        self.executor = ThreadPoolExecutor(threads or min(8, (os.cpu_count() or 2) * 2),
                                           thread_name_prefix="kzoo-serve")
        self.repo = Repository(root, backend, config_file=config_file, policy=version_policy,
                               on_load=self._attach_batcher)
        self._count_versions()
        self._uvicorn = self._grpc = self._thread = self._loop = self._poller = None
        self._ready, self._stopping = threading.Event(), threading.Event()
        self._error = None

    def _attach_batcher(self, servable):
        """Each loaded version gets its own batcher and its memory limits; requests queued
        on an unloaded version's batcher still run (they hold the servable)."""
        name = servable.name
        cfg = getattr(servable, "config", None)
        own = getattr(cfg, "max_request_memory_bytes", None)
        servable.budget = own or self.max_request_memory_bytes
        servable.budget_name = (f"max_request_memory_bytes of {cfg.base_path / 'serving.json'}" if own
                                else "--max-request-memory-bytes")
        servable.chunk_rows = self.batching["max_batch"]
        servable.max_response_bytes = self.max_response_bytes
        servable.batcher = Batcher(servable.run, self.executor, on_batch=self.metrics.batch.labels(name).observe,
                                   **self.batching)
        self.metrics.queue.labels(name).set_function(
            lambda: sum(s.batcher.depth for s in self.repo.models.get(name, {}).values()))

    def _count_versions(self):
        self.metrics.versions.clear()
        for name in self.repo.configs:
            states = {}
            try:
                rows = self.repo.status(name)
            except ServingError:  # configured, nothing on disk yet
                rows = []
            for row in rows:
                states[row["state"]] = states.get(row["state"], 0) + 1
            for state in ("AVAILABLE", "LOADING", "END"):
                self.metrics.versions.labels(name, state).set(states.get(state, 0))

    # --- keeping in step with the file system -------------------------------------
    def poll(self):
        """One poll now (the background thread does this every poll interval)."""
        events = self.repo.poll()
        self._count_versions()
        return events

    def _poll_forever(self):
        next_config = time.monotonic() + self.config_poll_s
        while not self._stopping.wait(self.poll_s if self.poll_s > 0 else self.config_poll_s):
            try:
                if self.repo.config_file and self.config_poll_s > 0 and time.monotonic() >= next_config:
                    self.repo.reload_config()
                    next_config = time.monotonic() + self.config_poll_s
                if self.poll_s > 0 or self.config_poll_s > 0:
                    self.poll()
            except Exception:  # never let the poller die; the next poll retries
                log.exception("version poll failed")

    # --- the request path shared by REST and gRPC ----------------------------------
    async def predict(self, name, version, decode, output_filter=(), label=None, encode=None, encoding="json"):
        """Run one request: `decode(servable) -> (signature, raw feeds)` is called in the
        thread pool, then (planned, see module docstring) the request is queued; returns
        (servable, signature, {output: array}), or `encode(servable, signature, outputs)`
        (run in the thread pool) in place of the outputs. Cancelling the calling task
        cancels the request (see `Batcher`)."""
        servable = self.repo.get(name, version, label)
        loop = asyncio.get_running_loop()
        output_filter = tuple(output_filter)

        def prepare():
            signature, feeds = decode(servable)
            signature, _ = servable.signature(signature)
            feeds, plan = servable.prepare(signature, feeds, encoding, output_filter)
            return signature, feeds, plan

        try:
            signature, feeds, plan = await loop.run_in_executor(self.executor, prepare)
        except ServingError as err:
            if err.code == "RESOURCE_EXHAUSTED":  # a refused big request: hand its decoded body back
                self._release_memory()
            raise
        need = plan.estimate.total  # reserved here, in the loop: no await before the try below
        if not self.pool.reserve(need):
            raise ServingError(f"the server is busy with other large requests ({fmt_bytes(self.pool.used)} of "
                               f"{fmt_bytes(self.pool.total)} in use, this one needs {fmt_bytes(need)}); "
                               "retry later", "RESOURCE_EXHAUSTED")
        try:
            try:
                outputs = await servable.batcher.submit(feeds, plan)
            except Stopped as err:
                log.info("%s: %s", servable.name, err)
                raise ServingError(str(err), "CANCELLED", 499) from None
            except Exception as err:
                raise as_serving_error(err) from None
            del feeds

            def finish():
                result = servable.finish(signature, outputs, output_filter)
                return encode(servable, signature, result) if encode else result

            result = await loop.run_in_executor(self.executor, finish)
            return servable, signature, result
        finally:
            self.pool.release(plan.estimate.total)
            if plan.estimate.total > RELEASE_AFTER_BYTES:
                feeds = outputs = None
                self._release_memory()

    def _release_memory(self):
        try:
            self.executor.submit(release_memory)
        except RuntimeError:  # the pool is shut down: the server is stopping
            pass

    def model_label(self, name):
        """The metrics label for a request naming `name` (unknown names share one label)."""
        return name if name in self.repo.configs or name in self.repo.models else "(unknown)"

    def observe(self, name, api, status, started, method="Predict"):
        self.metrics.observe(self.model_label(name), api, status, time.perf_counter() - started, method)

    # --- running ------------------------------------------------------------------
    @property
    def rest_url(self):
        return f"http://{self.host}:{self.port}"

    @property
    def grpc_url(self):
        return None if self.grpc_port is None else f"grpc://{self.host}:{self.grpc_port}"

    async def serve(self, on_ready=None):
        """Serve until `stop()` (or SIGINT/SIGTERM when run in the main thread)."""
        import uvicorn

        from kzoo.serving.rest import create_app, header_timeout_protocol

        self._loop = asyncio.get_running_loop()
        if self.poll_s >= 0 and (self.poll_s > 0 or self.config_poll_s > 0):
            self._stopping.clear()
            self._poller = threading.Thread(target=self._poll_forever, name="kzoo-serve-poll", daemon=True)
            self._poller.start()
        if self.grpc_port is not None:
            from kzoo.serving.grpc_service import start_grpc

            self._grpc, self.grpc_port = await start_grpc(self, self.host, self.grpc_port)
        config = uvicorn.Config(create_app(self), host=self.host, port=self.port, log_level="warning",
                                access_log=False, lifespan="off", timeout_keep_alive=30,
                                http=header_timeout_protocol(self.header_timeout_s))
        self._uvicorn = _uvicorn_server_class()(config)
        if threading.current_thread() is threading.main_thread():  # kzoo serve: Ctrl-C / SIGTERM
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(sig, self.stop_soon)

        async def run_uvicorn():
            try:
                await self._uvicorn.serve()
            except SystemExit:  # uvicorn exits when it cannot bind
                return False
            return True

        task = asyncio.ensure_future(run_uvicorn())
        try:
            while not self._uvicorn.started and not task.done():
                await asyncio.sleep(0.01)
            if task.done():
                raise KzooError(f"cannot listen on {self.host}:{self.port} (port in use or not allowed?)")
            self.port = self._uvicorn.servers[0].sockets[0].getsockname()[1]
            self._ready.set()
            if on_ready:
                on_ready(self)
            await task
        finally:
            self._stopping.set()
            if self._grpc is not None:
                await self._grpc.stop(grace=1.0)
            self.executor.shutdown(wait=False, cancel_futures=True)

    def stop_soon(self):
        """Ask a running server to finish its requests and stop (any thread)."""
        self._stopping.set()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    def run(self, on_ready=None):
        """Serve in the foreground (what `kzoo serve` does)."""
        asyncio.run(self.serve(on_ready))

    def start(self, timeout=60.0):
        """Serve in a background thread; returns once both ports listen."""
        def target():
            try:
                asyncio.run(self.serve())
            except BaseException as err:  # reported by start()
                self._error = err
                self._ready.set()

        self._thread = threading.Thread(target=target, name="kzoo-serve", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise KzooError(f"the server did not start within {timeout:.0f} s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout=10.0):
        self.stop_soon()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
