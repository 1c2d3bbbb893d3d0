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
from collections.abc import Coroutine
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
        left = self._pending(None)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
