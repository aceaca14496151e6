"""Serving errors carry a gRPC status code; REST maps it to an HTTP status as TF Serving does.

`as_serving_error` turns any failure of a request into a `ServingError`; the REST
app, the gRPC service and the server all import it from here (this module imports
nothing of the serving package, so none of them import each other for it).
"""

from __future__ import annotations

import logging

from kzoo.errors import KzooError

log = logging.getLogger("kzoo.serving")
# TF Serving's REST handler: INVALID_ARGUMENT / FAILED_PRECONDITION 400, NOT_FOUND 404,
# RESOURCE_EXHAUSTED 429 (a full batching queue), UNAVAILABLE 503.
HTTP_STATUS = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "NOT_FOUND": 404,
               "DEADLINE_EXCEEDED": 408, "RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503, "INTERNAL": 500,
               "UNKNOWN": 500}


class ServingError(KzooError):
    """A request the server refuses; `code` is the gRPC status name (`INVALID_ARGUMENT`, ...).

    Args:
        message: str. One line, sent to the client.
        code: str. gRPC status name.
        http_status: int. REST status (default: TF Serving's for `code`).
    """

    def __init__(self, message, code="INVALID_ARGUMENT", http_status=None):
        super().__init__(message)
        self.code = code
        self.http_status = http_status or HTTP_STATUS.get(code, 500)


def not_found(name, version=None):
    """TF Serving's wording for an unknown model or version."""
    which = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
    return ServingError(f"Servable not found for request: {which}", "NOT_FOUND")


def unknown_label(label):
    """TF Serving's wording (and status, INVALID_ARGUMENT / 400) for an unknown version label."""
    return ServingError(f"Unrecognized servable version label: {label}")


def as_serving_error(err):
    """Any failure of a request as a ServingError (a KzooError is the request's fault)."""
    if isinstance(err, ServingError):
        return err
    if isinstance(err, KzooError):
        return ServingError(str(err))
    if isinstance(err, RecursionError):  # a request nested deeper than Python's stack
        return ServingError("request is nested too deeply")
    if isinstance(err, MemoryError):
        return ServingError("request needs more memory than the server has", "RESOURCE_EXHAUSTED")
    log.exception("internal error", exc_info=err)
    return ServingError(f"internal error: {type(err).__name__}: {err}", "INTERNAL")
