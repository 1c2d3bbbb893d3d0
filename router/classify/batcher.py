"""A micro-batcher: concurrent requests share one model call, run in a worker thread.

``await batcher.submit(item)`` queues an item and waits for its result. One worker thread takes
the first queued item, drains whatever else is already waiting, then, if requests have recently
been arriving less than ``max_wait_s`` apart, waits at most ``max_wait_s`` for more (up to
``max_batch``) before calling ``fn`` on the batch. Under load the batches fill by themselves while
the previous call runs; a lone request on an idle batcher does not wait at all. The event loop
only enqueues and resolves futures: model work never runs on it.
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class BatcherClosed(RuntimeError):
    """The batcher was closed before the item was processed."""


@dataclass(slots=True)
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]
    loop: asyncio.AbstractEventLoop
    submitted_s: float
    """``time.perf_counter()`` when queued."""


class ArrivalGap:
    """Exponentially weighted mean gap between submissions, in seconds (``inf`` until two)."""

    def __init__(self, weight: float = 0.2) -> None:
        """``weight`` is the share of each new gap in the mean."""
        self._weight = weight
        self._last_s: float | None = None
        self.mean_s = math.inf

    def observe(self, submitted_s: float) -> None:
        """Record one submission time (``time.perf_counter()`` seconds, in order)."""
        if self._last_s is not None:
            gap = max(0.0, submitted_s - self._last_s)
            if math.isinf(self.mean_s):
                self.mean_s = gap
            else:
                self.mean_s += self._weight * (gap - self.mean_s)
        self._last_s = submitted_s

    def expects_more_within(self, window_s: float) -> bool:
        """Whether another submission is likely within ``window_s`` (worth waiting for)."""
        return self.mean_s <= window_s


def _resolve(fut: asyncio.Future[R], value: R) -> None:
    if not fut.done():
        fut.set_result(value)


def _fail(fut: asyncio.Future[R], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


@dataclass(frozen=True, slots=True)
class BatchStats:
    """Counters since start: calls of ``fn``, items processed, the largest batch, and how many
    batches waited for more items before running."""

    batches: int
    items: int
    largest: int
    waited: int


class MicroBatcher(Generic[T, R]):
    """Groups concurrent :meth:`submit` calls into calls of ``fn(list[T]) -> list[R]``."""

    def __init__(
        self,
        fn: Callable[[Sequence[T]], Sequence[R]],
        max_batch: int = 32,
        max_wait_s: float = 0.001,
        name: str = "micro-batcher",
    ) -> None:
        """Start the worker thread; ``fn`` must return one result per item, in order."""
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._fn = fn
        self.max_batch = max_batch
        self.max_wait_s = max(0.0, max_wait_s)
        self._queue: queue.SimpleQueue[_Pending[T, R] | None] = queue.SimpleQueue()
        self._closed = False
        self._batches = 0
        self._items = 0
        self._largest = 0
        self._waited = 0
        self._gap = ArrivalGap()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def stats(self) -> BatchStats:
        """How the batches have come out so far."""
        return BatchStats(self._batches, self._items, self._largest, self._waited)

    async def submit(self, item: T) -> R:
        """Queue ``item`` and wait for its result (raises what ``fn`` raised)."""
        if self._closed:
            raise BatcherClosed("the batcher is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._queue.put(_Pending(item, fut, loop, time.perf_counter()))
        return await fut

    def _collect(self, first: _Pending[T, R]) -> tuple[list[_Pending[T, R]], bool]:
        self._gap.observe(first.submitted_s)
        batch = [first]
        stop = False
        deadline = time.perf_counter() + self.max_wait_s
        waited = False
        while len(batch) < self.max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                # Waiting only pays when another request is due within the window; at low load
                # it would add max_wait_s to every request for nothing.
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or not self._gap.expects_more_within(self.max_wait_s):
                    break
                waited = True
                try:
                    nxt = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if nxt is None:
                stop = True
                break
            self._gap.observe(nxt.submitted_s)
            batch.append(nxt)
        self._waited += waited
        return batch, stop

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._collect(first)
            live = [p for p in batch if not p.future.cancelled()]
            if live:
                self._process(live)
            if stop:
                return

    def _process(self, batch: list[_Pending[T, R]]) -> None:
        try:
            results = list(self._fn([p.item for p in batch]))
            if len(results) != len(batch):
                raise RuntimeError(f"batch function returned {len(results)} for {len(batch)}")
        except Exception as exc:
            log.exception("batch_failed", batch_size=len(batch))
            for p in batch:
                p.loop.call_soon_threadsafe(_fail, p.future, exc)
            return
        self._batches += 1
        self._items += len(batch)
        self._largest = max(self._largest, len(batch))
        for p, r in zip(batch, results, strict=True):
            p.loop.call_soon_threadsafe(_resolve, p.future, r)

    async def aclose(self) -> None:
        """Finish queued work, stop the worker thread and fail anything submitted later."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        # Items that raced the sentinel: fail them rather than leave callers hanging.
        while True:
            try:
                p = self._queue.get_nowait()
            except queue.Empty:
                break
            if p is not None:
                p.loop.call_soon_threadsafe(_fail, p.future, BatcherClosed("batcher closed"))
