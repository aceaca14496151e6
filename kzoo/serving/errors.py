"""Serving errors carry a gRPC status code; REST maps it to an HTTP status (as TF Serving does)."""

from __future__ import annotations

from kzoo.errors import KzooError

HTTP_STATUS = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "NOT_FOUND": 404,
               "RESOURCE_EXHAUSTED": 503, "UNAVAILABLE": 503, "INTERNAL": 500}


class ServingError(KzooError):
    """A request the server refuses; `code` is the gRPC status name (`INVALID_ARGUMENT`, ...)."""

    def __init__(self, message, code="INVALID_ARGUMENT", http_status=None):
        super().__init__(message)
        self.code = code
        self.http_status = http_status or HTTP_STATUS.get(code, 500)


def not_found(name, version=None):
    """TF Serving's wording for an unknown model or version."""
    which = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
    return ServingError(f"Servable not found for request: {which}", "NOT_FOUND")
