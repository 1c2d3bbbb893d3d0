"""Helpers for the Redis client tests: a command that times out behind a busy server."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.redis.client import RedisHandle

BUSY = "local x = 0 for i = 1, tonumber(ARGV[1]) do x = x + i end return 1"
"""A script that keeps the server busy: 70M iterations take about 0.6 s here."""


async def busy_server_then_incr(fast: RedisHandle, other: RedisHandle, key: str) -> str | None:
    """Run INCR on ``fast`` (short timeout) while ``other`` keeps the server busy; the counter
    afterwards."""
    await fast.client.ping()  # connected: the INCR below is sent, then its reply times out
    busy = asyncio.ensure_future(other.client.eval(BUSY, 1, key + ":busy", 70_000_000))
    await asyncio.sleep(0.05)
    with pytest.raises(RedisTimeoutError):
        await fast.client.incr(key)
    await busy
    value = await other.client.get(key)
    return None if value is None else str(value)
