"""Thresholds from a target strong share: a rolling window of recent scores and its quantile.

A route with ``target_strong_share: 0.3`` sends the top 30 % of recent scores to its strongest
tier: the threshold is the window's ``1 - share`` quantile. This module keeps the window per
process (:class:`LocalScoreWindow`); a Redis-backed window shared by all replicas implements the
same :class:`ScoreWindow` protocol.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np


def quantile_threshold(scores: Iterable[float], target_strong_share: float) -> float:
    """The score at or above which ``target_strong_share`` of ``scores`` lie.

    Used by ``router calibrate`` and by the rolling window. ``scores`` must not be empty.
    """
    if not 0.0 < target_strong_share < 1.0:
        raise ValueError("target_strong_share must be in (0, 1)")
    arr = np.fromiter(scores, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no scores to calibrate on")
    return float(np.quantile(arr, 1.0 - target_strong_share, method="higher"))


def share_thresholds(base: Sequence[float], top_threshold: float) -> tuple[float, ...]:
    """Tier thresholds (weakest first, the first 0) with the strongest tier's set to ``top``.

    Intermediate tiers keep their policy ``min_score`` scaled into ``[0, top)`` so their order
    and relative spacing are preserved.
    """
    if len(base) < 2:
        return tuple(base)
    old_top = base[-1] or 1.0
    scaled = [b * top_threshold / old_top for b in base[:-1]]
    return (*scaled, top_threshold)


class ScoreWindow(Protocol):
    """Recent classifier scores of one route, and the threshold for a target strong share."""

    async def observe(self, score: float) -> None:
        """Record one request's score."""
        ...

    async def threshold(self, target_strong_share: float) -> float | None:
        """The current threshold, or None while too few scores have been seen."""
        ...


class LocalScoreWindow:
    """A per-process :class:`ScoreWindow` of the last ``size`` scores.

    The quantile is recomputed every ``refresh_every`` observations (it costs ~0.1 ms for 10k
    scores), so a request pays O(1).
    """

    def __init__(self, size: int = 5000, min_samples: int = 100, refresh_every: int = 50) -> None:
        """Keep up to ``size`` scores; no threshold before ``min_samples`` of them."""
        if size < 1 or min_samples < 1 or refresh_every < 1:
            raise ValueError("size, min_samples and refresh_every must be positive")
        self._scores: deque[float] = deque(maxlen=size)
        self.min_samples = min_samples
        self.refresh_every = refresh_every
        self._since_refresh = 0
        self._cache: dict[float, float] = {}

    def __len__(self) -> int:
        return len(self._scores)

    async def observe(self, score: float) -> None:
        """Record one score."""
        self._scores.append(float(score))
        self._since_refresh += 1
        if self._since_refresh >= self.refresh_every:
            self._cache.clear()
            self._since_refresh = 0

    async def threshold(self, target_strong_share: float) -> float | None:
        """The ``1 - target_strong_share`` quantile of the window (None while warming up)."""
        if len(self._scores) < self.min_samples:
            return None
        cached = self._cache.get(target_strong_share)
        if cached is None:
            cached = quantile_threshold(self._scores, target_strong_share)
            self._cache[target_strong_share] = cached
        return cached
