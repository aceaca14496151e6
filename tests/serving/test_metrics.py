"""Prometheus metrics at TF Serving's path: per-model counts by API and status, latencies."""

import requests
from prometheus_client.parser import text_string_to_metric_families

PATH = "/monitoring/prometheus/metrics"


def samples(server):
    r = requests.get(server.rest_url + PATH, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(r.text) for s in f.samples}


def count(s, model, api, status):
    return s.get(("kzoo_serving_request_count_total",
                  (("api", api), ("model_name", model), ("status", status))), 0.0)


def test_counts_and_latencies_per_model(server, cgan_inputs):
    from kzoo.serving import Client

    before = samples(server)
    body = {"inputs": {k: v.tolist() for k, v in cgan_inputs.items()}}
    for _ in range(3):
        assert requests.post(server.rest_url + "/v1/models/fcn:predict", json={"inputs": [[[[0, 0, 0]]]]},
                             timeout=10).status_code == 400
        assert requests.post(server.rest_url + "/v1/models/cgan:predict", json=body, timeout=10).ok
    requests.post(server.rest_url + "/v1/models/random-name-123:predict", json=body, timeout=10)
    with Client(server.grpc_url) as c:
        c.predict("cgan", cgan_inputs)
    after = samples(server)
    assert count(after, "cgan", "rest", "OK") - count(before, "cgan", "rest", "OK") == 3
    assert count(after, "fcn", "rest", "INVALID_ARGUMENT") - count(before, "fcn", "rest", "INVALID_ARGUMENT") == 3
    assert count(after, "(unknown)", "rest", "NOT_FOUND") - count(before, "(unknown)", "rest", "NOT_FOUND") >= 1
    assert not any("random-name-123" in str(k) for k in after)  # unknown names do not make new series
    assert count(after, "cgan", "grpc", "OK") - count(before, "cgan", "grpc", "OK") >= 1  # metadata + predict
    key = ("kzoo_serving_request_latency_seconds_count", (("api", "rest"), ("model_name", "cgan")))
    assert after[key] - before.get(key, 0) == 3
    inf = ("kzoo_serving_request_latency_seconds_bucket", (("api", "rest"), ("le", "+Inf"), ("model_name", "cgan")))
    assert after[inf] == after[key]
    assert ("kzoo_serving_queue_depth", (("model_name", "cgan"),)) in after


def test_tf_serving_metric_names_beside_kzoo_names(server, cgan_inputs):
    import re

    def tf_samples():
        text = requests.get(server.rest_url + PATH, timeout=10).text
        assert "# TYPE :tensorflow:serving:request_count counter" in text
        assert "# TYPE :tensorflow:serving:request_latency histogram" in text
        return {m[1]: float(m[2]) for m in re.finditer(r"^(:tensorflow:serving:\S+\{[^}]*\}) (\S+)$", text, re.M)}

    before = tf_samples()
    body = {"inputs": {k: v.tolist() for k, v in cgan_inputs.items()}}
    for _ in range(2):
        assert requests.post(server.rest_url + "/v1/models/cgan:predict", json=body, timeout=10).ok
    requests.post(server.rest_url + "/v1/models/cgan/versions/9:predict", json=body, timeout=10)
    after = tf_samples()

    def delta(key):
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta(':tensorflow:serving:request_count{model_name="cgan",status="OK"}') == 2
    assert delta(':tensorflow:serving:request_count{model_name="cgan",status="NOT_FOUND"}') == 1
    rest = 'model_name="cgan",API="Predict",entrypoint="REST"'
    assert delta(f":tensorflow:serving:request_latency_count{{{rest}}}") == 3
    assert delta(f':tensorflow:serving:request_latency_bucket{{{rest},le="+Inf"}}') == 3
    assert after[f":tensorflow:serving:request_latency_sum{{{rest}}}"] > 0  # microseconds
    assert f':tensorflow:serving:request_latency_bucket{{{rest},le="10.0"}}' in after  # TF's first bucket


def test_version_states_are_a_gauge(server):
    s = samples(server)
    assert s[("kzoo_serving_model_versions", (("model_name", "cgan"), ("state", "AVAILABLE")))] == 2
