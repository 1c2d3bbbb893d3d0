"""The one owner of background tasks: held by kind, waited for, drained and cancelled."""

from __future__ import annotations

import asyncio

from router.tasks import Tasks, cancel_and_wait


async def test_wait_covers_tasks_started_by_tasks_and_kinds_are_separate() -> None:
    tasks = Tasks()
    done: list[str] = []
    gate = asyncio.Event()

    async def second() -> None:
        done.append("second")

    async def first() -> None:
        await gate.wait()
        tasks.spawn("ledger", second())  # started while the owner waits
        done.append("first")

    blocked = asyncio.Event()
    tasks.spawn("ledger", first())
    other = tasks.spawn("cache", blocked.wait())
    assert tasks.running("ledger") == 1 and tasks.running() == 2
    gate.set()
    assert await tasks.wait("ledger")
    assert done == ["first", "second"] and tasks.running("ledger") == 0
    assert not other.done()  # waiting for one kind leaves the others alone
    blocked.set()
    assert await tasks.wait()
    assert tasks.running() == 0


async def test_drain_cancels_what_does_not_end_in_time() -> None:
    tasks = Tasks()
    never = asyncio.Event()
    finished = tasks.spawn("shadow", asyncio.sleep(0))
    stuck = tasks.spawn("shadow", never.wait())
    assert not await tasks.wait("shadow", timeout_s=0.0)
    await tasks.drain(timeout_s=0.0)
    assert finished.done() and stuck.cancelled() and tasks.running() == 0


async def test_cancel_and_wait_ends_a_task_that_swallows_a_cancellation() -> None:
    swallowed = 0

    async def stubborn_loop() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # as redis-py 8.2 does to one that lands inside a command

    task = asyncio.get_running_loop().create_task(stubborn_loop())
    await asyncio.sleep(0.02)
    await cancel_and_wait([task, None])
    assert task.cancelled() and swallowed == 1


async def test_cancel_and_wait_retrieves_a_failed_task_s_exception() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.get_running_loop().create_task(fails())
    await asyncio.sleep(0)
    await cancel_and_wait([task])  # no raise, and no "never retrieved" warning later
    assert isinstance(task.exception(), RuntimeError)
