"""The bounded load generator used by the serving tests and benchmarks/serving.py."""

from kzoo.serving.loadtest import run_load


def test_load_counts_failures_and_stops_at_the_deadline(server):
    stats = run_load(server.rest_url + "/v1/models/nope:predict", b"{}", requests=20, clients=4)
    assert stats["ok"] == 0 and stats["errors"] == 20 and stats["statuses"] == {"404": 20}
    assert "Servable not found" in stats["first_error"]
    stats = run_load(server.rest_url + "/v1/models/fcn", b"", requests=50, clients=2, deadline_s=0)
    assert stats["statuses"] == {"skipped": 50}


def test_classify_gives_a_timeline_per_label(server, cgan_inputs):
    import json

    body = json.dumps({"inputs": {k: v.tolist() for k, v in cgan_inputs.items()}}).encode()
    stats = run_load(server.rest_url + "/v1/models/cgan:predict", body, requests=30, clients=3,
                     classify=lambda text: "columnar" if "outputs" in text else "row")
    line = stats["timeline"]["columnar"]
    assert set(stats["timeline"]) == {"columnar"} and line["count"] == 30
    assert 0 < line["first_s"] <= line["last_s"] <= stats["seconds"]
