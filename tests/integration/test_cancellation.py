"""Loops that poll Redis through redis-py stop when their owner shuts them down, although
redis-py's asyncio client swallows a cancellation that lands inside a command."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aredis

from router.tasks import cancel_and_wait

pytestmark = pytest.mark.integration


async def test_polling_loops_on_redis_py_end_when_cancelled(redis_client: aredis.Redis) -> None:
    polls = 0

    async def watcher() -> None:  # the shape of the head, policy and budget watchers
        nonlocal polls
        while True:
            await asyncio.sleep(0)
            await redis_client.lindex("rl:test:watched", 0)
            polls += 1

    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(watcher()) for _ in range(50)]
    await asyncio.sleep(0.05)  # every watcher is polling
    assert polls > 0
    await asyncio.wait_for(cancel_and_wait(tasks), timeout=30)
    assert all(t.cancelled() for t in tasks)
