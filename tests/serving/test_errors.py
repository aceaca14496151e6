"""Serving errors: TF Serving's codes and HTTP statuses, one home for `as_serving_error`."""

import subprocess
import sys

from kzoo.errors import KzooError
from kzoo.serving.errors import HTTP_STATUS, ServingError, as_serving_error, not_found, unknown_label


def test_codes_and_statuses_as_tf_serving():
    assert HTTP_STATUS["RESOURCE_EXHAUSTED"] == 429 and HTTP_STATUS["NOT_FOUND"] == 404
    assert (unknown_label("x").code, unknown_label("x").http_status) == ("INVALID_ARGUMENT", 400)
    assert str(not_found("m", 3)) == "Servable not found for request: Specific(m, 3)"
    assert str(not_found("m")) == "Servable not found for request: Latest(m)"


def test_any_failure_becomes_a_serving_error():
    err = ServingError("x", "NOT_FOUND")
    assert as_serving_error(err) is err
    assert as_serving_error(KzooError("bad input")).http_status == 400
    assert as_serving_error(RecursionError()).http_status == 400
    assert as_serving_error(MemoryError()).code == "RESOURCE_EXHAUSTED"
    internal = as_serving_error(ZeroDivisionError("boom"))
    assert internal.http_status == 500 and "ZeroDivisionError: boom" in str(internal)


def test_rest_and_grpc_do_not_import_the_server():
    code = ("import sys, kzoo.serving.rest, kzoo.serving.grpc_service; "
            "print('kzoo.serving.server' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-500:]
