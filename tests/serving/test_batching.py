"""Dynamic batching: joins requests that arrive together, keeps shapes apart, bounds the queue."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from kzoo.serving.batching import Batcher
from kzoo.serving.errors import ServingError


class Recorder:
    def __init__(self, gate=None):
        self.sizes, self.threads, self.gate = [], set(), gate

    def __call__(self, feeds, plan=None, should_stop=None):
        if self.gate:
            self.gate.wait(10)
        self.sizes.append(len(feeds["x"]))
        self.threads.add(threading.current_thread().name)
        return {"y": feeds["x"] * 2, "n": np.full(len(feeds["x"]), len(feeds["x"]))}


def run(coro):
    return asyncio.run(coro)


def feeds(n, width=3, value=0):
    return {"x": np.full((n, width), value, np.float32)}


def test_concurrent_requests_run_as_one_batch_and_get_their_own_rows():
    rec = Recorder()

    async def main():
        b = Batcher(rec, ThreadPoolExecutor(2, thread_name_prefix="pool"), max_batch=64, wait_s=0.2)
        return await asyncio.gather(*(b.submit(feeds(1 + i % 3, value=i)) for i in range(12)))

    outs = run(main())
    assert sum(rec.sizes) == 24 and max(rec.sizes) > 1
    for i, out in enumerate(outs):
        assert out["y"].shape == (1 + i % 3, 3) and np.all(out["y"] == 2 * i)
    assert all(t.startswith("pool") for t in rec.threads)  # never on the event loop's thread


def test_max_batch_and_shape_groups():
    rec = Recorder()

    async def main():
        b = Batcher(rec, ThreadPoolExecutor(1), max_batch=4, wait_s=0.2)
        reqs = [b.submit(feeds(1, width=3)) for _ in range(6)] + [b.submit(feeds(1, width=5)) for _ in range(2)]
        return await asyncio.gather(*reqs)

    outs = run(main())
    assert max(rec.sizes) <= 4 and sum(rec.sizes) == 8
    assert [o["y"].shape[1] for o in outs] == [3] * 6 + [5] * 2


def test_max_batch_one_never_joins():
    rec = Recorder()

    async def main():
        b = Batcher(rec, ThreadPoolExecutor(1), max_batch=1, wait_s=0.5)
        await asyncio.gather(*(b.submit(feeds(1)) for _ in range(5)))

    run(main())
    assert rec.sizes == [1] * 5


def test_full_queue_is_resource_exhausted_and_recovers():
    gate = threading.Event()
    rec = Recorder(gate)

    async def main():
        b = Batcher(rec, ThreadPoolExecutor(1), max_batch=1, wait_s=0, max_queue=2)
        first = asyncio.ensure_future(b.submit(feeds(1)))
        await asyncio.sleep(0.05)  # first is running (blocked), the queue is empty
        waiting = [asyncio.ensure_future(b.submit(feeds(1))) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(ServingError) as info:
            await b.submit(feeds(1))
        gate.set()
        await asyncio.gather(first, *waiting)
        await b.submit(feeds(1))  # answers again
        return info.value

    err = run(main())
    assert err.code == "RESOURCE_EXHAUSTED" and err.http_status == 429  # as TF Serving
    assert len(rec.sizes) == 4


def test_a_failing_batch_fails_its_requests_not_the_batcher():
    calls = []

    def flaky(f, plan=None, should_stop=None):
        calls.append(len(f["x"]))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return {"y": f["x"]}

    async def main():
        b = Batcher(flaky, ThreadPoolExecutor(1), max_batch=8, wait_s=0.05)
        results = await asyncio.gather(*(b.submit(feeds(1)) for _ in range(3)), return_exceptions=True)
        return results, await b.submit(feeds(2))

    results, after = run(main())
    assert all(isinstance(r, RuntimeError) for r in results) and after["y"].shape == (2, 3)
