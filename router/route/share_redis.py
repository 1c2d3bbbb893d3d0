"""A score window shared by every replica, in Redis (a capped list per route).

Requests never wait on Redis here: observations are buffered and pushed in the background
(one ``LPUSH`` + ``LTRIM`` per batch), and the threshold is refreshed in the background every
``refresh_s`` seconds from the whole list. If Redis fails, the process-local window answers.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any

import structlog

from router.redis.keys import score_window_key
from router.route.share import LocalScoreWindow, quantile_threshold
from router.tasks import Tasks

log = structlog.get_logger(__name__)


TASK_KIND = "score-window"
"""The kind of the windows' background pushes and refreshes in :class:`~router.tasks.Tasks`."""


class RedisScoreWindow:
    """A :class:`~router.route.share.ScoreWindow` of the last ``size`` scores of a route,
    across all replicas."""

    def __init__(
        self,
        redis: Any,
        route_alias: str,
        size: int = 5000,
        min_samples: int = 100,
        flush_every: int = 20,
        refresh_s: float = 2.0,
        tasks: Tasks | None = None,
    ) -> None:
        """``redis`` is a ``redis.asyncio`` client (standalone, Sentinel or Cluster); ``tasks``
        holds the background pushes and refreshes (the app's one owner; a private one if None)."""
        self._redis = redis
        self.key = score_window_key(route_alias)
        self.size = size
        self.min_samples = min_samples
        self.flush_every = flush_every
        self.refresh_s = refresh_s
        self._pending: list[float] = []
        self._local = LocalScoreWindow(size=size, min_samples=min_samples)
        self._shared: list[float] = []
        self._refreshed_at = 0.0
        self._cache: dict[float, float] = {}
        self._tasks = tasks if tasks is not None else Tasks()
        self.errors = 0

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.spawn(TASK_KIND, coro)

    async def observe(self, score: float) -> None:
        """Record one score; pushed to Redis with the next batch."""
        await self._local.observe(score)
        self._pending.append(float(score))
        if len(self._pending) >= self.flush_every:
            batch, self._pending = self._pending, []
            self._spawn(self._push(batch))

    async def _push(self, batch: list[float]) -> None:
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.lpush(self.key, *(f"{s:.6f}" for s in batch))
            pipe.ltrim(self.key, 0, self.size - 1)
            await pipe.execute()
        except Exception as exc:  # the window is advisory; never fail a request for it
            self.errors += 1
            log.warning("score_window_push_failed", key=self.key, error=repr(exc))

    async def _refresh(self) -> None:
        try:
            raw = await self._redis.lrange(self.key, 0, self.size - 1)
            self._shared = [float(x) for x in raw]
            self._cache.clear()
        except Exception as exc:
            self.errors += 1
            log.warning("score_window_refresh_failed", key=self.key, error=repr(exc))

    async def threshold(self, target_strong_share: float) -> float | None:
        """The window's ``1 - share`` quantile; the local window's while Redis has too few."""
        now = time.monotonic()
        if now - self._refreshed_at >= self.refresh_s:
            self._refreshed_at = now
            self._spawn(self._refresh())
        if len(self._shared) < self.min_samples:
            return await self._local.threshold(target_strong_share)
        cached = self._cache.get(target_strong_share)
        if cached is None:
            cached = quantile_threshold(self._shared, target_strong_share)
            self._cache[target_strong_share] = cached
        return cached

    async def aclose(self) -> None:
        """Push what is buffered and wait for background work."""
        if self._pending:
            batch, self._pending = self._pending, []
            await self._push(batch)
        await self._tasks.wait(TASK_KIND)
