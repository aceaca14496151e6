"""Per-model request counts and latencies in Prometheus text format.

Served at `/monitoring/prometheus/metrics`, the path TF Serving uses. Built on
`prometheus_client` (correct exposition, histogram buckets, label escaping) with
a registry per server, so several servers in one process keep apart.

- `kzoo_serving_request_count_total{model_name, api, status}` (api: rest | grpc;
  status: the gRPC status name, OK for success)
- `kzoo_serving_request_latency_seconds{model_name, api}` histogram
- `kzoo_serving_batch_size{model_name}` histogram of the batches run
- `kzoo_serving_queue_depth{model_name}` requests waiting
"""

from __future__ import annotations

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("kzoo_serving_request_count", "Predict and metadata requests by model, API "
                                "and status.", ["model_name", "api", "status"], registry=self.registry)
        self.latency = Histogram("kzoo_serving_request_latency_seconds", "Request latency (receipt to answer).",
                                 ["model_name", "api"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch = Histogram("kzoo_serving_batch_size", "Rows per batch run by the model.",
                               ["model_name"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.queue = Gauge("kzoo_serving_queue_depth", "Requests waiting to be batched.", ["model_name"],
                           registry=self.registry)

    def observe(self, model, api, status, seconds):
        model = model or "(none)"
        self.requests.labels(model, api, status).inc()
        self.latency.labels(model, api).observe(seconds)

    def text(self):
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
