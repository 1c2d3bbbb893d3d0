"""The idle timeout of a streamed upstream response, one timer per stream instead of per read.

``asyncio.timeout`` around each read armed and cancelled a timer for every piece of a stream;
at thousands of pieces a second that was a measurable share of the relay's CPU
(docs/performance.md, stream section). :class:`IdleWatch` keeps one timer: each read only notes
when it began, and the timer, when it fires, either finds the current read older than the
limit (and times it out) or moves itself to that read's own deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class IdleWatch:
    """Time out any single read of a stream that waits longer than ``idle_s`` seconds.

    The read raises :class:`TimeoutError` in the task that awaits it, as ``asyncio.timeout``
    would. The task is taken at each read: a stream's first read runs in the request's task,
    the rest in the upstream reader's. Call :meth:`close` when the stream ends.
    """

    __slots__ = ("_cancelling", "_fired", "_idle_s", "_loop", "_since", "_task", "_timer")

    def __init__(self, idle_s: float) -> None:
        self._idle_s = idle_s
        self._loop = asyncio.get_running_loop()
        self._since: float | None = None
        """When the read in progress began (loop time, seconds); None between reads."""
        self._task: asyncio.Task[object] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._fired = False
        self._cancelling = 0

    async def read(self, read: Callable[[], Awaitable[bytes]]) -> bytes:
        """Await ``read()``; TimeoutError when it takes more than ``idle_s`` seconds."""
        task = asyncio.current_task()
        self._task = task
        self._since = since = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(since + self._idle_s, self._check)
        try:
            return await read()
        except asyncio.CancelledError:
            # Ours only if the timer cancelled this task and nobody else did too.
            if self._fired and task is not None and task.uncancel() <= self._cancelling:
                self._fired = False
                raise TimeoutError from None
            raise
        finally:
            self._since = None

    def _check(self) -> None:
        self._timer = None
        since, task = self._since, self._task
        if since is None or task is None:  # between reads: the next read arms it again
            return
        due = since + self._idle_s
        if self._loop.time() < due:
            self._timer = self._loop.call_at(due, self._check)
            return
        self._fired = True
        self._cancelling = task.cancelling()
        task.cancel()

    def close(self) -> None:
        """Stop the timer (the stream ended or was closed)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self._since = None
