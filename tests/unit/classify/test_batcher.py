"""The micro-batcher: grouping, order, worker thread, errors, shutdown."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from router.classify.batcher import ArrivalGap, BatcherClosed, MicroBatcher


class Recorder:
    """A batch function that records its batches and the thread it ran on."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[int] = set()
        self.delay_s = delay_s

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.threads.add(threading.get_ident())
        self.batches.append(list(items))
        time.sleep(self.delay_s)
        return [i * 10 for i in items]


async def test_concurrent_submits_share_batches_and_keep_order() -> None:
    fn = Recorder(delay_s=0.02)
    b: MicroBatcher[int, int] = MicroBatcher(fn, max_batch=8, max_wait_s=0.005)
    results = await asyncio.gather(*(b.submit(i) for i in range(20)))
    await b.aclose()
    assert results == [i * 10 for i in range(20)]
    assert max(len(x) for x in fn.batches) > 1
    assert all(len(x) <= 8 for x in fn.batches)
    assert sorted(i for x in fn.batches for i in x) == list(range(20))
    assert b.stats.items == 20 and b.stats.largest == max(len(x) for x in fn.batches)


async def test_work_runs_off_the_event_loop_thread() -> None:
    fn = Recorder()
    b: MicroBatcher[int, int] = MicroBatcher(fn, max_batch=4, max_wait_s=0.0)
    assert await b.submit(3) == 30
    await b.aclose()
    assert threading.get_ident() not in fn.threads


async def test_an_idle_batcher_does_not_wait_for_company() -> None:
    # Requests arrive further apart than the wait window: waiting would only add latency.
    b: MicroBatcher[int, int] = MicroBatcher(Recorder(delay_s=0.03), max_batch=64, max_wait_s=0.02)
    for i in range(5):
        assert await b.submit(i) == i * 10
    await b.aclose()
    assert b.stats.batches == 5 and b.stats.waited == 0


def test_arrival_gap_expects_more_only_when_requests_come_fast() -> None:
    gap = ArrivalGap(weight=0.5)
    assert not gap.expects_more_within(0.001)  # nothing seen yet
    for t in (0.0, 0.0004, 0.0008, 0.0012):
        gap.observe(t)
    assert gap.mean_s == pytest.approx(0.0004)
    assert gap.expects_more_within(0.001)
    gap.observe(1.0)  # a quiet second
    assert not gap.expects_more_within(0.001)
    gap.observe(0.5)  # out-of-order timestamps count as no gap, never negative
    assert gap.mean_s >= 0.0


async def test_errors_reach_every_caller_of_the_batch() -> None:
    def boom(items: Sequence[int]) -> list[int]:
        raise RuntimeError("model failed")

    b: MicroBatcher[int, int] = MicroBatcher(boom, max_batch=4, max_wait_s=0.005)
    results = await asyncio.gather(b.submit(1), b.submit(2), return_exceptions=True)
    await b.aclose()
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_wrong_result_count_is_an_error() -> None:
    b: MicroBatcher[int, int] = MicroBatcher(lambda items: [], max_batch=2, max_wait_s=0.0)
    with pytest.raises(RuntimeError):
        await b.submit(1)
    await b.aclose()


async def test_submit_after_close_fails() -> None:
    b: MicroBatcher[int, int] = MicroBatcher(Recorder(), max_batch=2)
    await b.aclose()
    await b.aclose()  # idempotent
    with pytest.raises(BatcherClosed):
        await b.submit(1)


def test_rejects_bad_batch_size() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(Recorder(), max_batch=0)
