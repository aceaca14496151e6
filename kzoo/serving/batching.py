"""Dynamic batching: requests that arrive together run as one batch.

One `Batcher` per served version. `await batcher.submit(feeds)` queues a request's
prepared feeds (all inputs share the batch dimension). A worker task takes the
oldest request, waits up to `wait_s` for more (until `max_batch` rows), joins the
requests whose non-batch shapes and dtypes match the oldest one's (a spatially
dynamic model gets requests of different sizes), runs them in the thread pool --
never on the event loop -- and hands each request its slice of the outputs. A
request larger than `max_batch` runs alone (its `run` splits it into chunks of the
model's batch size), and so does a request planned in tiles. At most `max_queue`
requests wait per version; one more is refused with RESOURCE_EXHAUSTED, the
back-pressure TF Serving's batching queue gives (HTTP 429, as TF Serving).

Cancellation: a request whose caller is gone (its awaiting task cancelled: a gRPC
deadline or cancel, a REST client that hung up) is dropped from the queue, and a
batch that is running is told to stop at its next chunk or tile once every request
in it is gone (`run`'s `should_stop`).
"""

from __future__ import annotations

import asyncio
import collections
import time

import numpy as np

from kzoo.serving.errors import ServingError


def batch_key(feeds):
    return tuple((k, v.dtype.str, v.shape[1:]) for k, v in sorted(feeds.items()))


def rows(feeds):
    return len(next(iter(feeds.values())))


class Batcher:
    """See module docstring. `run(feeds, plan, should_stop) -> {output: array}` is called in
    `executor` (`plan`: the first request's, see `submit`); `on_batch(size)` (optional)
    observes each batch size."""

    def __init__(self, run, executor, *, max_batch=32, wait_s=0.002, max_queue=256, on_batch=None):
        if max_batch < 1 or max_queue < 1 or wait_s < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and wait_s >= 0")
        self.run, self.executor = run, executor
        self.max_batch, self.wait_s, self.max_queue = max_batch, wait_s, max_queue
        self.on_batch = on_batch
        self.queue = collections.deque()
        self._wakeup = None
        self._worker = None

    @property
    def depth(self):
        return len(self.queue)

    async def submit(self, feeds, plan=None):
        """Queue one request's feeds (with its `plan`; one with a tile plan is never joined
        with others) and wait for its outputs."""
        if len(self.queue) >= self.max_queue:
            raise ServingError(f"the request queue is full ({self.max_queue} waiting); retry later",
                               "RESOURCE_EXHAUSTED")
        loop = asyncio.get_running_loop()
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        future = loop.create_future()
        key = batch_key(feeds) + ((object(),) if getattr(plan, "tile", None) else ())
        self.queue.append((feeds, key, rows(feeds), time.monotonic(), future, plan))
        self._wakeup.set()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._work())
        return await future

    def _compatible_rows(self, key):
        return sum(n for _, k, n, _, _, _ in self.queue if k == key)

    async def _work(self):
        while self.queue:
            _, key, first_rows, arrived, _, _ = self.queue[0]
            if self.max_batch > 1:
                deadline = arrived + self.wait_s
                while self._compatible_rows(key) < self.max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), left)
                    except asyncio.TimeoutError:
                        break
            batch = self._take(key, first_rows)
            if not batch:
                continue
            futures = [b[4] for b in batch]
            try:
                outputs = await asyncio.get_running_loop().run_in_executor(
                    self.executor, self._run_batch, [b[0] for b in batch], batch[0][5],
                    lambda: all(f.cancelled() for f in futures))
            except BaseException as err:  # a failing batch fails its requests, not the server
                for b in batch:
                    if not b[4].done():
                        b[4].set_exception(err if isinstance(err, Exception) else RuntimeError(str(err)))
                if not isinstance(err, Exception):
                    raise
                continue
            for b, out in zip(batch, outputs):
                if not b[4].done():
                    b[4].set_result(out)

    def _take(self, key, first_rows):
        taken, total, keep = [], 0, collections.deque()
        limit = max(self.max_batch, first_rows)
        while self.queue:
            item = self.queue.popleft()
            if item[1] == key and (not taken or total + item[2] <= limit) and not item[4].cancelled():
                taken.append(item)
                total += item[2]
            elif not item[4].cancelled():
                keep.append(item)
        self.queue.extendleft(reversed(keep))
        return taken

    def _run_batch(self, feeds_list, plan, should_stop):
        if self.on_batch:
            self.on_batch(sum(rows(f) for f in feeds_list))
        if len(feeds_list) == 1:
            return [self.run(feeds_list[0], plan, should_stop)]
        joined = {k: np.concatenate([f[k] for f in feeds_list]) for k in feeds_list[0]}
        out = self.run(joined, plan, should_stop)
        bounds = np.cumsum([rows(f) for f in feeds_list])[:-1]
        parts = {k: np.split(v, bounds) for k, v in out.items()}
        return [{k: parts[k][i] for k in out} for i in range(len(feeds_list))]
