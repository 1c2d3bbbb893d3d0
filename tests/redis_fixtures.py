"""Pytest fixtures for a real Redis 8: import them from ``tests/conftest.py``.

``from tests.redis_fixtures import *  # noqa`` gives every test:

* ``redis_server`` (session): the URL of an :class:`EmbeddedRedis` started once per test session
  in a temporary data directory (or ``$TEST_REDIS_URL`` when set, to test against a real
  deployment; that server is flushed by ``redis_client``, so never point it at production).
* ``redis_client`` (function, async): a ``redis.asyncio`` client on that server, after
  ``FLUSHALL``, decoding replies to ``str`` like the gateway's own client.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import redis.asyncio as aredis

from router.redis.embedded import EmbeddedRedis

__all__ = ["redis_client", "redis_server"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Redis 8 server for this test session (embedded, AOF in a temporary directory)."""
    external = os.environ.get("TEST_REDIS_URL")
    if external:
        yield external
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis-data"), appendfsync="no")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest_asyncio.fixture
async def redis_client(redis_server: str) -> AsyncIterator[aredis.Redis]:
    """An async client on ``redis_server`` with an empty database."""
    client = aredis.Redis.from_url(redis_server, decode_responses=True)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()
