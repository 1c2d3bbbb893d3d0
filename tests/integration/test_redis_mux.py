"""The multiplexed connection (router/redis/mux.py) on a real Redis 8: replies reach the right
callers, failures raise redis-py's exceptions, and nothing is sent twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis.asyncio as aredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.redis.client import RedisHandle, connect_redis
from router.redis.embedded import EmbeddedRedis
from router.redis.mux import MuxAddress, RedisMux
from tests.integration.redis_support import BUSY

pytestmark = pytest.mark.integration


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    srv = EmbeddedRedis(tmp_path / "r")
    await srv.astart()
    try:
        yield srv
    finally:
        await srv.astop()


@pytest.fixture
async def handle(server: EmbeddedRedis) -> AsyncIterator[RedisHandle]:
    h = await connect_redis(server.url)
    try:
        yield h
    finally:
        await h.aclose()


@pytest.fixture
async def mux(handle: RedisHandle) -> AsyncIterator[RedisMux]:
    m = _mux(handle)
    try:
        yield m
    finally:
        await m.aclose()


def _mux(handle: RedisHandle, timeout_s: float | None = None) -> RedisMux:
    mux = RedisMux.for_client(handle.client)
    assert mux is not None
    if timeout_s is not None:
        mux.timeout_s = timeout_s
    return mux


async def test_commands_scripts_and_error_replies(handle: RedisHandle, mux: RedisMux) -> None:
    assert await mux.set("k", "é", ex=60) == "OK"
    assert await mux.get("k") == "é"  # decoded as redis-py's decode_responses would
    assert await handle.client.ttl("k") > 0
    assert await mux.get("missing") is None
    script = mux.register_script("return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}")
    assert await script(keys=["a"], args=[b"\x00\xff".decode("latin-1"), 41]) == [
        "a",
        "\x00\xff",
        42,
    ]
    with pytest.raises(NoScriptError):
        await mux.evalsha("0" * 40, 0)
    with pytest.raises(ResponseError, match="unknown command"):
        await mux.execute_command("NO-SUCH-COMMAND")
    with pytest.raises(DataError):
        await mux.execute_command("SET", "k", None)
    await mux.execute_command("ZADD", "z", 1, "a", 2, "b")
    assert await mux.zrem("z", "a") == 1
    # a script the server forgot (restart, SCRIPT FLUSH) is loaded again, then run once
    await handle.client.script_flush()
    await handle.client.delete("n")
    incr = mux.register_script("return redis.call('INCR', KEYS[1])")
    assert await incr(keys=["n"]) == 1
    assert await handle.client.get("n") == "1"


async def test_replies_reach_their_callers_when_many_are_in_flight(mux: RedisMux) -> None:
    await asyncio.gather(*(mux.set(f"k{i}", str(i)) for i in range(500)))
    got = await asyncio.gather(*(mux.get(f"k{i}") for i in range(500)))
    assert got == [str(i) for i in range(500)]


async def test_commands_of_one_loop_turn_go_out_in_one_write(
    handle: RedisHandle, mux: RedisMux
) -> None:
    await mux.set("k", "v")

    async def reads() -> int:
        return int((await handle.client.info("stats"))["total_reads_processed"])

    before = await reads()
    got = await asyncio.gather(*(mux.get("k") for _ in range(200)))
    assert got == ["v"] * 200
    # one read of the mux's batch, one of the second INFO (a write per command: ~200)
    assert await reads() - before <= 3


class CountingTransport:
    """The connection's transport, counting its writes."""

    def __init__(self, inner: asyncio.Transport) -> None:
        self.inner = inner
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_commands_issued_while_a_batch_is_unanswered_go_out_together_after_it(
    mux: RedisMux,
) -> None:
    await mux.set("k", "v")
    conn = mux._conn
    assert conn is not None and conn.transport is not None
    counting = CountingTransport(conn.transport)
    conn.transport = cast(asyncio.Transport, counting)
    slow = asyncio.ensure_future(mux.execute_command("EVAL", BUSY, 1, "busy", 20_000_000))
    gets = []
    for _ in range(50):  # one command per turn of the loop, while the script runs
        gets.append(asyncio.ensure_future(mux.get("k")))
        await asyncio.sleep(0.001)
    assert await slow == 1
    assert await asyncio.gather(*gets) == ["v"] * 50
    # the script (with the GET of its turn), then the 49 held commands at once
    assert len(counting.writes) == 2
    assert [w.count(b"GET") for w in counting.writes] == [1, 49]
    # nothing unanswered: the next command goes out at the end of this turn, alone
    assert await mux.get("k") == "v"
    assert len(counting.writes) == 3


async def test_execute_many_returns_each_reply_or_its_error_in_place(mux: RedisMux) -> None:
    got = await mux.execute_many(
        [("SET", "a", "1"), ("INCR", "no-such-script-name", "x"), ("EVALSHA", "0" * 40, 0),
         ("INCR", "a"), ("GET", "a")]
    )  # fmt: skip
    assert got[0] == "OK" and got[3] == 2 and got[4] == "2"
    assert isinstance(got[1], ResponseError) and isinstance(got[2], NoScriptError)
    with pytest.raises(DataError):
        await mux.execute_many([("GET", None)])


async def test_a_cancelled_caller_does_not_shift_the_replies(mux: RedisMux) -> None:
    await mux.set("k", "v")
    slow = asyncio.ensure_future(mux.execute_command("EVAL", BUSY, 1, "busy", 20_000_000))
    await asyncio.sleep(0.02)
    slow.cancel()
    assert await mux.get("k") == "v"  # not the script's reply


async def test_a_timeout_fails_what_is_in_flight_and_sends_nothing_again(
    server: EmbeddedRedis, handle: RedisHandle
) -> None:
    mux = _mux(handle, timeout_s=0.1)
    other = await connect_redis(server.url, socket_timeout_s=10)
    try:
        await mux.get("k")  # connected
        busy = asyncio.ensure_future(other.client.eval(BUSY, 1, "busy", 70_000_000))
        await asyncio.sleep(0.05)
        with pytest.raises(RedisTimeoutError):
            await mux.execute_command("INCR", "n")
        await busy
        # the INCR was dropped with its connection or ran once; never twice
        assert await other.client.get("n") in (None, "1")
        assert await mux.get("k") is None  # a new connection serves the next command
    finally:
        await mux.aclose()
        await other.aclose()


async def test_a_lost_connection_fails_the_command_in_flight_then_reconnects(
    handle: RedisHandle,
    mux: RedisMux,
) -> None:
    await mux.set("k", "v")
    waiting = asyncio.ensure_future(mux.execute_command("BLPOP", "nothing", 5))
    await asyncio.sleep(0.05)
    await handle.client.client_kill_filter(_type="normal", skipme=True)
    with pytest.raises(RedisConnectionError):
        await waiting
    assert await mux.get("k") == "v"


async def test_a_server_restart_is_reconnected(server: EmbeddedRedis) -> None:
    handle = await connect_redis(server.url)
    mux = _mux(handle)
    try:
        assert await mux.execute_command("INCR", "k") == 1
        await server.astop()
        with pytest.raises(RedisConnectionError):
            await mux.get("k")  # nothing listens
        await server.astart()
        assert await mux.execute_command("INCR", "k") == 2
    finally:
        await mux.aclose()
        await handle.aclose()


async def test_password_and_database_come_from_the_client(handle: RedisHandle) -> None:
    assert isinstance(handle.client, aredis.Redis)
    await handle.client.config_set("requirepass", "s3cret")
    authed = aredis.Redis(
        unix_socket_path=handle.client.connection_pool.connection_kwargs["path"],
        password="s3cret",
        db=3,
        decode_responses=True,
    )
    mux = RedisMux.for_client(authed)
    assert mux is not None and mux.address.password == "s3cret" and mux.address.db == 3
    try:
        await mux.set("k", "in db 3")
        assert await authed.get("k") == "in db 3"
    finally:
        await mux.aclose()
        await authed.config_set("requirepass", "")
        await authed.aclose()


def test_only_plain_standalone_clients_get_a_mux() -> None:
    assert RedisMux.for_client(aredis.Redis.from_url("rediss://localhost:6390")) is None
    assert RedisMux.for_client(aredis.Redis.from_url("redis://localhost:6390", protocol=3)) is None
    mux = RedisMux.for_client(aredis.Redis.from_url("redis://u:p@db.example:6390/2"))
    assert mux is not None
    assert mux.address == MuxAddress(
        path=None, host="db.example", port=6390, username="u", password="p", db=2
    )


async def test_nothing_listening_is_a_connection_error(tmp_path: Path) -> None:
    mux = RedisMux(MuxAddress(path=str(tmp_path / "none.sock")), timeout_s=0.5)
    with pytest.raises(RedisConnectionError):
        await mux.get("k")
