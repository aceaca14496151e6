"""`ModelServer`: an export tree served over TF Serving's REST and gRPC APIs.

One asyncio event loop runs uvicorn (the REST app of `kzoo.serving.rest`) and a
grpc.aio server (`kzoo.serving.grpc_service`); both call `ModelServer.predict`,
which decodes and validates a request in the thread pool, queues it on the
version's `Batcher` (dynamic batching, bounded queue) and post-processes the
outputs in the thread pool. The event loop itself only moves bytes.

Example:
>>> server = ModelServer("export", port=0, grpc_port=0).start()   # in a thread
>>> server.rest_url, server.grpc_url
('http://127.0.0.1:41235', 'grpc://127.0.0.1:40121')
>>> server.stop()

`kzoo serve` runs `ModelServer(...).run()` in the foreground (Ctrl-C stops it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from kzoo.errors import KzooError
from kzoo.serving.batching import Batcher
from kzoo.serving.errors import ServingError
from kzoo.serving.metrics import Metrics
from kzoo.serving.repository import Repository

log = logging.getLogger("kzoo.serving")
DEFAULT_MAX_BODY = 16 * 1024 * 1024


def as_serving_error(err):
    """Any failure of a request as a ServingError (KzooError: the request's fault)."""
    if isinstance(err, ServingError):
        return err
    if isinstance(err, KzooError):
        return ServingError(str(err))
    log.exception("internal error", exc_info=err)
    return ServingError(f"internal error: {type(err).__name__}: {err}", "INTERNAL")


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
    """Serves every model and version of an export tree (see module docstring).

    Args:
        root: the export tree (`export/`).
        backend: `onnx` (onnxruntime) or `savedmodel` (TensorFlow).
        host: str. Interface to listen on; 127.0.0.1 unless told otherwise.
        port: int. REST port (0: any free port).
        grpc_port: int or None. gRPC port (0: any free port; None: no gRPC).
        max_batch: int. Most rows run together (1: no batching).
        batch_wait_ms: float. How long the oldest request waits for others.
        max_queue: int. Requests waiting per version before 503 / RESOURCE_EXHAUSTED.
        max_body_bytes: int. Largest REST body or gRPC message accepted.
        threads: int. Worker threads for decoding and running models.
    """

    def __init__(self, root="export", *, backend="onnx", host="127.0.0.1", port=8501, grpc_port=8500,
                 max_batch=32, batch_wait_ms=2.0, max_queue=256, max_body_bytes=DEFAULT_MAX_BODY,
                 threads=None):
        for flag, value, low in (("--max-batch", max_batch, 1), ("--max-queue", max_queue, 1),
                                 ("--max-body-bytes", max_body_bytes, 1), ("--batch-wait-ms", batch_wait_ms, 0)):
            if value < low:
                raise KzooError(f"{flag} must be >= {low}, got {value}")
        self.repo = Repository(root, backend)
        self.host, self.port, self.grpc_port = host, port, grpc_port
        self.max_body_bytes = int(max_body_bytes)
        self.metrics = Metrics()
        self.executor = ThreadPoolExecutor(threads or min(8, (os.cpu_count() or 2) * 2),
                                           thread_name_prefix="kzoo-serve")
        self.batchers = {}
        for name, versions in self.repo.models.items():
            for v, servable in versions.items():
                self.batchers[name, v] = Batcher(
                    servable.run, self.executor, max_batch=max_batch, wait_s=batch_wait_ms / 1000.0,
                    max_queue=max_queue, on_batch=self.metrics.batch.labels(name).observe)
            self.metrics.queue.labels(name).set_function(
                lambda name=name: sum(b.depth for (n, _), b in self.batchers.items() if n == name))
        self._uvicorn = self._grpc = self._thread = self._loop = None
        self._ready = threading.Event()
        self._error = None

    # --- the request path shared by REST and gRPC ----------------------------------
    async def predict(self, name, version, decode, output_filter=()):
        """Run one request: `decode(servable) -> (signature, raw feeds)` is called in the
        thread pool; returns (servable, signature, {output: array})."""
        servable = self.repo.get(name, version)
        loop = asyncio.get_running_loop()

        def prepare():
            signature, feeds = decode(servable)
            signature, _ = servable.signature(signature)
            return signature, servable.prepare(signature, feeds)

        signature, feeds = await loop.run_in_executor(self.executor, prepare)
        try:
            outputs = await self.batchers[servable.name, servable.version].submit(feeds)
        except Exception as err:
            raise as_serving_error(err) from None
        result = await loop.run_in_executor(self.executor, servable.finish, signature, outputs,
                                            tuple(output_filter))
        return servable, signature, result

    def model_label(self, name):
        """The metrics label for a request naming `name` (unknown names share one label)."""
        return name if name in self.repo.models or name in self.repo.failed else "(unknown)"

    def observe(self, name, api, status, started):
        self.metrics.observe(self.model_label(name), api, status, time.perf_counter() - started)

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

        from kzoo.serving.rest import create_app

        self._loop = asyncio.get_running_loop()
        if self.grpc_port is not None:
            from kzoo.serving.grpc_service import start_grpc

            self._grpc, self.grpc_port = await start_grpc(self, self.host, self.grpc_port)
        config = uvicorn.Config(create_app(self), host=self.host, port=self.port, log_level="warning",
                                access_log=False, lifespan="off", timeout_keep_alive=30)
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
            if self._grpc is not None:
                await self._grpc.stop(grace=1.0)
            self.executor.shutdown(wait=False, cancel_futures=True)

    def stop_soon(self):
        """Ask a running server to finish its requests and stop (any thread)."""
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
