"""The one owner of a process's short background tasks.

The gateway starts work it does not wait for: ledger writes, cache stores, score-window pushes,
shadow jobs, model loads. Each such task must be referenced until it ends (the event loop keeps
only weak references) and must be waited for, or cancelled, at shutdown. :class:`Tasks` does
both for every kind of task: the app's lifespan creates one and hands it to ``Services``, whose
shutdown drains it in one place. A component built on its own (a CLI command, a report, a test)
gets a private ``Tasks`` when it is given none.

Only tasks that end by themselves belong here; loops that run until cancelled (the policy
watcher, the head watcher) are stopped by their owners.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


class Tasks:
    """Background tasks by kind (``"ledger"``, ``"cache"``, ...), held until they end."""

    def __init__(self) -> None:
        self._kinds: dict[str, set[asyncio.Task[Any]]] = {}

    def spawn(self, kind: str, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``coro`` as a task of ``kind`` in the running loop."""
        task = asyncio.get_running_loop().create_task(coro)
        running = self._kinds.get(kind)
        if running is None:
            running = self._kinds[kind] = set()
        running.add(task)
        task.add_done_callback(running.discard)
        return task

    def running(self, kind: str | None = None) -> int:
        """How many tasks of ``kind`` (None: of every kind) have not ended yet."""
        if kind is not None:
            return len(self._kinds.get(kind, ()))
        return sum(len(tasks) for tasks in self._kinds.values())

    def _pending(self, kind: str | None) -> set[asyncio.Task[Any]]:
        if kind is not None:
            return set(self._kinds.get(kind, ()))
        return {t for tasks in self._kinds.values() for t in tasks}

    async def wait(self, kind: str | None = None, timeout_s: float | None = None) -> bool:
        """Wait until no task of ``kind`` (None: any) runs, tasks started meanwhile included,
        for at most ``timeout_s`` seconds (None: no limit); True when none is left."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while pending := self._pending(kind):
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            await asyncio.wait(pending, timeout=remaining)
        return True

    async def drain(self, timeout_s: float) -> None:
        """Shutdown: wait (at most ``timeout_s`` seconds) for every task, then cancel the
        rest and wait for them to end."""
        if await self.wait(None, timeout_s):
            return
        await cancel_and_wait(self._pending(None))


RECANCEL_S = 0.05
"""How often :func:`cancel_and_wait` cancels again a task that is still running (seconds)."""


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None]) -> None:
    """Cancel ``tasks`` (None entries are skipped) and wait until every one has ended,
    cancelling again, every :data:`RECANCEL_S`, those still running.

    Once is not enough: redis-py's asyncio client (8.2, on Python 3.11) swallows a
    cancellation that lands while one of its commands runs (50 of 50 loops of ``LINDEX``
    calls kept running after one cancel, ``tests/integration/test_cancellation.py``; the
    known class of bug: redis/redis-py#2551, aio-libs/async-timeout#229), and the task goes
    on: a watcher loop then sleeps and polls again, and its owner's shutdown waited forever.
    The next cancellation finds it elsewhere (asleep) and ends it. A task's own exception is
    not raised here: it ended, which is all a shutdown needs."""
    given = [t for t in tasks if t is not None]
    pending = {t for t in given if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)
    for task in given:  # retrieved: no "exception was never retrieved" at collection
        if not task.cancelled():
            task.exception()
