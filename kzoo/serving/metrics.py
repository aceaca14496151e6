"""Prometheus metrics of `kzoo serve`, under kzoo's names and under TF Serving's.

kzoo's own (prometheus_client): `kzoo_serving_request_count_total{model_name,api,status}`,
`kzoo_serving_request_latency_seconds{model_name,api}`, `kzoo_serving_batch_size{model_name}`,
`kzoo_serving_queue_depth{model_name}`, `kzoo_serving_model_versions{model_name,state}`.

TF Serving's, as its Prometheus exporter writes them (`/tensorflow/serving/x` becomes
`:tensorflow:serving:x`, counters without `_total`, latencies in microseconds with
buckets `10 * 1.8**i`, i < 33), so existing TF Serving dashboards work unchanged:
`:tensorflow:serving:request_count{model_name,status}` (status: OK or the gRPC code
name) and `:tensorflow:serving:request_latency{model_name,API,entrypoint}` (API:
Predict / GetModelMetadata / GetModelStatus; entrypoint: REST / GRPC).

References:
    tensorflow_serving/servables/tensorflow/util.cc (metric names, labels, buckets).
"""

from __future__ import annotations

import bisect
import threading

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TF_LATENCY_BUCKETS_US = tuple(10 * 1.8 ** i for i in range(33))
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TF_REQUEST_COUNT = ":tensorflow:serving:request_count"
TF_REQUEST_LATENCY = ":tensorflow:serving:request_latency"


class TFServingMetrics:
    """TF Serving's request count and latency (see module docstring), in its text form."""

    def __init__(self):
        self._lock = threading.Lock()
        self.counts = {}  # (model_name, status) -> n
        self.latency = {}  # (model_name, API, entrypoint) -> [bucket counts..., sum]

    def observe(self, model, api, entrypoint, status, seconds):
        us = seconds * 1e6
        with self._lock:
            self.counts[model, status] = self.counts.get((model, status), 0) + 1
            cell = self.latency.setdefault((model, api, entrypoint), [0] * (len(TF_LATENCY_BUCKETS_US) + 2))
            cell[bisect.bisect_left(TF_LATENCY_BUCKETS_US, us)] += 1
            cell[-1] += us

    def text(self):
        def labels(**kv):
            return ",".join(f'{k}="{_escape(v)}"' for k, v in kv.items())

        with self._lock:
            counts, latency = dict(self.counts), {k: list(v) for k, v in self.latency.items()}
        lines = [f"# HELP {TF_REQUEST_COUNT} The total number of requests.",
                 f"# TYPE {TF_REQUEST_COUNT} counter"]
        lines += [f"{TF_REQUEST_COUNT}{{{labels(model_name=m, status=s)}}} {n}"
                  for (m, s), n in sorted(counts.items())]
        lines += [f"# HELP {TF_REQUEST_LATENCY} Distribution of wall time (in microseconds) for Tensorflow "
                  "Serving request.", f"# TYPE {TF_REQUEST_LATENCY} histogram"]
        for (m, api, entry), cell in sorted(latency.items()):
            base, total = labels(model_name=m, API=api, entrypoint=entry), 0
            for le, n in zip(TF_LATENCY_BUCKETS_US + (float("inf"),), cell[:-1]):
                total += n
                bound = "+Inf" if le == float("inf") else repr(round(le, 6))
                lines.append(f'{TF_REQUEST_LATENCY}_bucket{{{base},le="{bound}"}} {total}')
            lines += [f"{TF_REQUEST_LATENCY}_sum{{{base}}} {cell[-1]}", f"{TF_REQUEST_LATENCY}_count{{{base}}} {total}"]
        return "\n".join(lines) + "\n"


def _escape(v):
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Every metric of one server; `text()` is the body of `/monitoring/prometheus/metrics`."""

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
        self.versions = Gauge("kzoo_serving_model_versions", "Versions per model and state (AVAILABLE, "
                              "LOADING, END).", ["model_name", "state"], registry=self.registry)
        self.tf = TFServingMetrics()

    def observe(self, model, api, status, seconds, method="Predict"):
        """One answered request: `api` is `rest` or `grpc`, `method` TF Serving's API name."""
        model = model or "(none)"
        self.requests.labels(model, api, status).inc()
        self.latency.labels(model, api).observe(seconds)
        self.tf.observe(model, method, api.upper(), status, seconds)

    def text(self):
        from prometheus_client import generate_latest

        return generate_latest(self.registry) + self.tf.text().encode()
