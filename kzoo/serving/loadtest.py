"""A bounded load generator for TF Serving-style REST endpoints (tests and benchmarks).

`run_load(url, body, requests=500, clients=32)` POSTs `body` `requests` times from
`clients` threads (one keep-alive session each) and returns throughput and latency
percentiles. Bounded in count and in time (`deadline_s`): it never runs away.
With `classify(response_text) -> label` (e.g. which model version answered) it also
returns a timeline: per label, the first and last answer (seconds after the start)
and the count -- how a rollout looks from the client.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def run_load(url, body, requests=500, clients=32, timeout=30.0, deadline_s=300.0, classify=None):
    """Returns {requests, clients, ok, errors, statuses, seconds, throughput_rps, p50_ms, p90_ms,
    p99_ms, max_ms, first_error, started_at} (+ `timeline` with `classify`; `started_at`: unix time)."""
    import requests as http

    local, stop_at = threading.local(), time.monotonic() + deadline_s
    timeline, lock = {}, threading.Lock()

    def one(_):
        if time.monotonic() > stop_at:
            return "skipped", 0.0, None
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = http.Session()
        started = time.perf_counter()
        try:
            r = session.post(url, data=body, timeout=timeout, headers={"Content-Type": "application/json"})
            if classify is not None and r.status_code == 200:
                label, at = classify(r.text), round(time.perf_counter() - t0, 4)
                with lock:
                    first, last, n = timeline.get(label, (at, at, 0))
                    timeline[label] = (min(first, at), max(last, at), n + 1)
            return r.status_code, time.perf_counter() - started, None if r.status_code == 200 else r.text[:300]
        except http.RequestException as err:
            return "exception", time.perf_counter() - started, str(err)[:300]

    t0 = started = time.perf_counter()
    started_at = time.time()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(requests)))
    seconds = time.perf_counter() - started
    done = [r for r in results if r[0] != "skipped"]
    latencies = np.array([r[1] for r in done if r[0] == 200]) * 1000.0
    statuses = {}
    for r in results:
        statuses[str(r[0])] = statuses.get(str(r[0]), 0) + 1

    def pct(q):
        return round(float(np.percentile(latencies, q)), 2) if latencies.size else None

    extra = {"timeline": {k: {"first_s": v[0], "last_s": v[1], "count": v[2]} for k, v in sorted(timeline.items())}
             } if classify is not None else {}
    return {**extra, "started_at": started_at, "requests": requests, "clients": clients, "ok": int(latencies.size),
            "errors": len(results) - int(latencies.size), "statuses": statuses, "seconds": round(seconds, 3),
            "throughput_rps": round(latencies.size / seconds, 1) if seconds else None,
            "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
            "max_ms": round(float(latencies.max()), 2) if latencies.size else None,
            "first_error": next((r[2] for r in done if r[2]), None)}
