"""The Redis score window: shared by replicas, capped, and a quantile over all of them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from router.redis.keys import score_window_key
from router.route.share_redis import RedisScoreWindow

pytestmark = [pytest.mark.integration, pytest.mark.clock]


async def test_two_replicas_share_one_window(redis_client: Any) -> None:
    a = RedisScoreWindow(redis_client, "auto", size=300, min_samples=100, refresh_s=0.0)
    b = RedisScoreWindow(redis_client, "auto", size=300, min_samples=100, refresh_s=0.0)
    for i in range(100):  # replica a sees low scores, b sees high ones
        await a.observe(i / 200)
        await b.observe(0.5 + i / 200)
    await a.aclose()
    await b.aclose()
    assert await redis_client.llen(score_window_key("auto")) == 200
    await a.threshold(0.3)  # schedules the refresh
    await asyncio.sleep(0.05)
    t = await a.threshold(0.3)
    await a.aclose()
    # the 70th percentile of both replicas' scores; a alone would give about 0.35
    assert t is not None and 0.69 <= t <= 0.71


async def test_window_is_capped_and_warms_up_locally(redis_client: Any) -> None:
    w = RedisScoreWindow(redis_client, "capped", size=50, min_samples=10, flush_every=5)
    assert await w.threshold(0.5) is None
    for i in range(120):
        await w.observe(i / 120)
    await w.aclose()
    assert await redis_client.llen(score_window_key("capped")) == 50
