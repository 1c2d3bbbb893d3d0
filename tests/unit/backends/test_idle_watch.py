"""IdleWatch: a read that waits longer than the limit times out, in the task that reads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from router.backends.idle_watch import IdleWatch


def reader(gate: asyncio.Event, data: bytes = b"x") -> Callable[[], Awaitable[bytes]]:
    async def read() -> bytes:
        await gate.wait()
        return data

    return read


async def test_a_read_that_comes_returns_its_bytes() -> None:
    gate = asyncio.Event()
    gate.set()
    watch = IdleWatch(30.0)
    assert await watch.read(reader(gate, b"abc")) == b"abc"
    watch.close()


async def test_a_read_that_never_comes_times_out_and_leaves_the_task_uncancelled() -> None:
    watch = IdleWatch(0.02)
    with pytest.raises(TimeoutError):
        await watch.read(reader(asyncio.Event()))
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    watch.close()


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    watch = IdleWatch(30.0)
    task = asyncio.get_running_loop().create_task(watch.read(reader(asyncio.Event())))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    watch.close()


async def test_the_timeout_reaches_the_task_that_reads_now() -> None:
    """The first read in one task (the request's), the next in another (the reader's): only
    the second, which waits, times out; the first task goes on undisturbed."""
    watch = IdleWatch(0.05)
    done, later = asyncio.Event(), asyncio.Event()
    done.set()

    async def first_task() -> str:
        await watch.read(reader(done))
        await later.wait()  # still running when the second read times out
        return "fine"

    a = asyncio.get_running_loop().create_task(first_task())
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        await watch.read(reader(asyncio.Event()))
    later.set()
    assert await a == "fine"
    watch.close()


async def test_reads_that_each_come_in_time_never_time_out() -> None:
    """Idle, not total: 30 reads of ~50 ms against a 1 s limit (1.5 s in all)."""
    watch = IdleWatch(1.0)

    async def slow() -> bytes:
        await asyncio.sleep(0.05)
        return b"x"

    for _ in range(30):
        assert await watch.read(slow) == b"x"
    watch.close()
