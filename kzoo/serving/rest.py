"""TF Serving's REST API on Starlette (run by uvicorn), plus the demo page and metrics.

    GET  /v1/models/<name>[/versions/<v>|/labels/<l>]             model status
    GET  /v1/models/<name>[/versions/<v>|/labels/<l>]/metadata    signatures (SignatureDefMap JSON)
    POST /v1/models/<name>[/versions/<v>|/labels/<l>]:predict     {"instances": ...} | {"inputs": ...}
    GET  /monitoring/prometheus/metrics               Prometheus text format
    GET  /                                            demo page (static HTML + JS)
    GET  /kzoo/models                                 kzoo.json of every served version (demo)

Errors are `{"error": "..."}` with TF Serving's HTTP status: 400 for a bad
request (also an unknown version label, or a path TF Serving's URL grammar does
not match, e.g. `/versions/-1`, and a request over its memory budget or response
limit), 404 for an unknown model or version, 429 when the queue is full or the
server's memory pool is busy. The URL grammar matches case-insensitively, as TF
Serving's `(?i)` regexes do (http_rest_api_util.cc, `kPredictionApiGegex` and
`kModelStatusApiRegex`), but its handler then dispatches on the verb and the
`metadata` subresource as written (`*method == "predict"`, `model_subresource ==
"metadata"` in http_rest_api_handler.cc): `/V1/MODELS/m:predict` is a predict,
`/v1/models/m:PREDICT` is "Malformed request" (400) there and here, and
`/v1/models/m/METADATA` answers the model's status.

A client that hangs up while its predict runs cancels it (see `kzoo.serving.batching`). Limits of a good server: a body over `max_body_bytes` is read
and discarded (up to `DISCARD_LIMIT`, within the body timeout) and answered 413
with `Connection: close`, so a client that sends its whole body before reading
(Python's http.client) sees the 413, not a reset; a body that does not arrive
within `body_timeout_s` gets 408; headers that do not arrive within
`header_timeout_s` get 408 and the connection closed (`header_timeout_protocol`).

References:
    tensorflow_serving/model_servers/http_rest_api_handler.cc (URL grammar, errors).
"""

from __future__ import annotations

import asyncio
import re
import time
from importlib import resources

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kzoo.serving import codec
from kzoo.serving.errors import ServingError, as_serving_error
from kzoo.serving.metrics import CONTENT_TYPE

# TF Serving's grammar: versions are digits, labels anything but '/' and ':'.
URL = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                 r"(?:/(?P<meta>metadata)|:(?P<verb>[A-Za-z]+))?/?$", re.IGNORECASE)
STATIC = {"index.html": "text/html; charset=utf-8", "demo.js": "text/javascript; charset=utf-8",
          "demo.css": "text/css; charset=utf-8"}
DISCARD_LIMIT = 64 << 20  # most bytes of an oversized body read and dropped before closing


def json_response(obj, status=200, headers=None):
    return Response(codec.dumps(obj), status_code=status, media_type="application/json", headers=headers)


def error_response(err):
    close = {"Connection": "close"} if err.http_status in (408, 413) else None
    return json_response({"error": str(err)}, err.http_status, close)


async def read_body(request, limit, timeout_s):
    """The request body, at most `limit` bytes (413 after reading and discarding the
    rest, see module docstring), within `timeout_s` (408)."""
    async def read():
        length = request.headers.get("content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        if declared is not None and declared > limit and declared > DISCARD_LIMIT:
            raise ServingError(f"request body of {declared} bytes is over the limit of {limit} bytes",
                               "INVALID_ARGUMENT", 413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
            elif size > DISCARD_LIMIT:
                break
        if size > limit:
            raise ServingError(f"request body of {declared or f'over {limit}'} bytes is over the limit of "
                               f"{limit} bytes", "INVALID_ARGUMENT", 413)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(read(), timeout_s)
    except asyncio.TimeoutError:
        raise ServingError(f"the request body did not arrive within {timeout_s:g} s",
                           "DEADLINE_EXCEEDED", 408) from None


async def unless_disconnected(request, coro):
    """Await `coro`, cancelling it (and raising `ClientDisconnect`) if the client hangs up
    first: once the body is read, the next ASGI message is the disconnect."""
    task = asyncio.ensure_future(coro)

    async def watch():
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    try:
        await task
    except BaseException:  # its cancellation, or what it failed with meanwhile
        pass
    raise ClientDisconnect()


def header_timeout_protocol(seconds):
    """uvicorn's h11 protocol, closing a connection whose request headers take longer
    than `seconds` to arrive (after a `408`), so slow or silent clients cannot hold
    connections open; idle keep-alive connections are closed by uvicorn itself."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutProtocol(H11Protocol):
        _timer = _armed_for = None

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm()

        def data_received(self, data):
            if self.cycle is None or self.cycle.response_complete:
                self._arm()
            super().data_received(data)
            if self._timer is not None and self.cycle is not self._armed_for:  # headers complete
                self._timer.cancel()
                self._timer = None

        def connection_lost(self, exc):
            if self._timer is not None:
                self._timer.cancel()
            super().connection_lost(exc)

        def _arm(self):
            if self._timer is None:
                self._armed_for = self.cycle
                self._timer = self.loop.call_later(seconds, self._late)

        def _late(self):
            self._timer = None
            if self.cycle is self._armed_for and not self.transport.is_closing():
                body = codec.dumps({"error": f"request headers did not arrive within {seconds:g} s"})
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                     b"connection: close\r\ncontent-length: " + str(len(body)).encode()
                                     + b"\r\n\r\n" + body)
                self.transport.close()

    return HeaderTimeoutProtocol


def create_app(server):
    """The Starlette app of a `kzoo.serving.server.ModelServer`."""
    repo = server.repo

    async def v1(request):
        started, name, status, method = time.perf_counter(), None, "OK", "Predict"
        try:
            # the body first, always: a client sending it before reading gets the answer
            body = (await read_body(request, server.max_body_bytes, server.body_timeout_s)
                    if request.method == "POST" else b"")
            m = URL.match(request.url.path)
            if not m:
                raise ServingError(f"Malformed request: {request.method} {request.url.path}")
            name, version, label, meta, verb = m["name"], m["version"], m["label"], m["meta"], m["verb"]
            meta = meta if meta == "metadata" else None  # TF Serving: the subresource as written
            if request.method == "GET" and not verb:
                if meta:
                    method = "GetModelMetadata"
                    servable = repo.get(name, version, label)
                    return json_response({"model_spec": {"name": name, "signature_name": "",
                                                         "version": str(servable.version)},
                                          "metadata": {"signature_def": codec.signature_def_map(
                                              servable.signatures)}})
                method = "GetModelStatus"
                return json_response({"model_version_status": repo.status(name, version, label)})
            if request.method == "POST" and verb == "predict" and not m["meta"]:
                form = {}

                def decode(servable):
                    signature, feeds, form["form"] = codec.parse_predict(
                        body, servable.signatures, max_bytes=server.max_tensor_bytes)
                    return signature, feeds

                def encode(servable, signature, outputs):
                    return codec.predict_response_bytes(outputs, form["form"])

                _, _, data = await unless_disconnected(request, server.predict(
                    name, version, decode, label=label, encode=encode, encoding="json"))
                return Response(data, media_type="application/json")
            if request.method == "POST" and verb in ("classify", "regress"):
                raise ServingError(f"{verb} is not supported by kzoo serve models (use :predict)")
            raise ServingError(f"Malformed request: {request.method} {request.url.path}")
        except ClientDisconnect:
            status = "CANCELLED"
            return Response(status_code=499)
        except Exception as err:
            err = as_serving_error(err)
            status = err.code
            return error_response(err)
        finally:
            server.observe(name, "rest", status, started, method)

    async def v1_any_case(request):  # /v1/, /V1/: TF Serving's kPathRegex is "(?i)/v1/.*"
        if request.path_params["v1"].lower() != "v1":
            return await not_found(request, None)
        return await v1(request)

    async def metrics(request):
        return Response(server.metrics.text(), media_type=CONTENT_TYPE)

    async def models(request):
        from kzoo.latent import style_mixing_info

        latest = {n: vs[max(vs)] for n, vs in repo.models.items()}
        mixing = style_mixing_info({n: v.info for n, v in latest.items()})  # the demo's style-mixing view
        return JSONResponse({"models": [
            {"name": n, "versions": sorted(vs, reverse=True),
             "signatures": sorted(latest[n].signatures),
             "info": {**latest[n].info, "style_mixing": mixing[n]} if n in mixing else latest[n].info}
            for n, vs in sorted(repo.models.items())]})

    async def static(request):
        filename = request.path_params.get("filename", "index.html")
        if filename not in STATIC:
            return json_response({"error": f"no such file: {filename}"}, 404)
        data = resources.files("kzoo.serving").joinpath("static", filename).read_bytes()
        return Response(data, media_type=STATIC[filename])

    async def not_found(request, exc):
        return json_response({"error": f"Malformed request: {request.method} {request.url.path}"}, 404)

    routes = [Route("/", static), Route("/static/{filename}", static),
              Route("/kzoo/models", models), Route("/monitoring/prometheus/metrics", metrics),
              Route("/{v1}/{path:path}", v1_any_case, methods=["GET", "POST"])]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: _method_not_allowed})


async def _method_not_allowed(request, exc):
    return json_response({"error": f"Malformed request: {request.method} {request.url.path}"}, 405)
