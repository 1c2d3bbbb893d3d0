"""The gateway's Redis client re-sends a command after a connection error, never after a timeout.

A timed-out command may still run (here: it waits behind a busy script), so re-sending it would
run it twice; the budget and ledger scripts add to counters, so that would charge twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from router.redis.client import connect_redis
from router.redis.embedded import EmbeddedRedis
from tests.integration.redis_support import busy_server_then_incr

pytestmark = pytest.mark.integration


async def test_a_timed_out_command_is_not_sent_again(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "r")
    await server.astart()
    fast = await connect_redis(server.url, socket_timeout_s=0.1)
    other = await connect_redis(server.url, socket_timeout_s=10)
    try:
        # The timed-out INCR ran at most once: here the server drops it with its closed
        # connection (None); a re-send would have run after the busy script (and not raised).
        assert await busy_server_then_incr(fast, other, "k") in (None, "1")
    finally:
        await fast.aclose()
        await other.aclose()
        await server.astop()


async def test_a_restart_costs_no_request(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "r")
    await server.astart()
    handle = await connect_redis(server.url)
    try:
        assert await handle.client.incr("k") == 1
        await server.astop()
        await server.astart()  # same socket; the pooled connection is now dead
        assert await handle.client.incr("k") == 2  # AOF kept the first
    finally:
        await handle.aclose()
        await server.astop()
