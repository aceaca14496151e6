"""TF Serving's REST API on Starlette (run by uvicorn), plus the demo page and metrics.

    GET  /v1/models/<name>[/versions/<v>]             model status
    GET  /v1/models/<name>[/versions/<v>]/metadata    signatures (SignatureDefMap JSON)
    POST /v1/models/<name>[/versions/<v>]:predict     {"instances": ...} | {"inputs": ...}
    GET  /monitoring/prometheus/metrics               Prometheus text format
    GET  /                                            demo page (static HTML + JS)
    GET  /kzoo/models                                 kzoo.json of every served version (demo)

Errors are `{"error": "..."}` with TF Serving's HTTP status: 400 for a bad
request, 404 for an unknown model or version, 413 for a body over
`max_body_bytes`, 503 when the queue is full.
"""

from __future__ import annotations

import re
import time
from importlib import resources

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kzoo.serving import codec
from kzoo.serving.errors import ServingError
from kzoo.serving.metrics import CONTENT_TYPE
from kzoo.serving.server import as_serving_error

URL = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
                 r"(?:/(?P<meta>metadata)|:(?P<verb>[A-Za-z]+))?/?$")
STATIC = {"index.html": "text/html; charset=utf-8", "demo.js": "text/javascript; charset=utf-8",
          "demo.css": "text/css; charset=utf-8"}


def json_response(obj, status=200):
    return Response(codec.dumps(obj), status_code=status, media_type="application/json")


def error_response(err):
    return json_response({"error": str(err)}, err.http_status)


async def read_body(request, limit):
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ServingError(f"request body of {length} bytes is over the limit of {limit} bytes",
                           "INVALID_ARGUMENT", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServingError(f"request body is over the limit of {limit} bytes", "INVALID_ARGUMENT", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(server):
    """The Starlette app of a `kzoo.serving.server.ModelServer`."""
    repo = server.repo

    async def v1(request):
        started, name, status = time.perf_counter(), None, "OK"
        try:
            m = URL.match(request.url.path)
            if not m:
                raise ServingError(f"Malformed request: {request.method} {request.url.path}")
            name, version, meta, verb = m["name"], m["version"], m["meta"], m["verb"]
            if m["label"] is not None:
                raise ServingError(f"Unrecognized servable version label: {m['label']} (kzoo serve has "
                                   "no version labels; use /versions/<v>)", "NOT_FOUND")
            if request.method == "GET" and not verb:
                if meta:
                    servable = repo.get(name, version)
                    return json_response({"model_spec": {"name": name, "signature_name": "",
                                                         "version": str(servable.version)},
                                          "metadata": {"signature_def": codec.signature_def_map(
                                              servable.signatures)}})
                return json_response({"model_version_status": repo.status(name, version)})
            if request.method == "POST" and verb == "predict" and not meta:
                body = await read_body(request, server.max_body_bytes)
                form = {}

                def decode(servable):
                    signature, feeds, form["form"] = codec.parse_predict(body, servable.signatures)
                    return signature, feeds

                _, _, outputs = await server.predict(name, version, decode)
                return json_response(codec.predict_response(outputs, form["form"]))
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
            server.observe(name, "rest", status, started)

    async def metrics(request):
        return Response(server.metrics.text(), media_type=CONTENT_TYPE)

    async def models(request):
        return JSONResponse({"models": [
            {"name": n, "versions": sorted(vs, reverse=True),
             "signatures": sorted(vs[max(vs)].signatures), "info": vs[max(vs)].info}
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
              Route("/v1/{path:path}", v1, methods=["GET", "POST"])]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: _method_not_allowed})


async def _method_not_allowed(request, exc):
    return json_response({"error": f"Malformed request: {request.method} {request.url.path}"}, 405)
