"""The embedded Redis 8: start, persistence, clean stop, no orphans, and the client factory."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis
import redis.asyncio as aredis

from router.redis.client import connect_redis, redact_url
from router.redis.embedded import (
    URL_FILE,
    EmbeddedRedis,
    EmbeddedRedisError,
    default_data_dir,
    running_server_url,
)

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still "exists"; read its state
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_fixture_server_has_vector_sets(redis_client: aredis.Redis) -> None:
    cmd = redis_client.execute_command
    await cmd("VADD", "vs", "VALUES", 3, 1, 0, 0, "a")  # type: ignore[no-untyped-call]
    info = await redis_client.info("server")
    assert int(str(info["redis_version"]).split(".")[0]) >= 8
    assert await cmd("VCARD", "vs") == 1  # type: ignore[no-untyped-call]


async def test_redis_client_fixture_flushes(redis_client: aredis.Redis) -> None:
    assert await redis_client.dbsize() == 0


def test_aof_survives_restart(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, appendfsync="always") as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        client.close()
        pid = server.pid
    assert pid is not None and not _alive(pid)
    assert (tmp_path / "redis" / "appendonly").is_dir()
    with EmbeddedRedis(tmp_path) as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.get("k") == "v"
        client.close()


def test_tcp_transport_and_lock(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, transport="tcp") as server:
        assert server.url.startswith("redis://127.0.0.1:")
        assert redis.Redis.from_url(server.url).ping()
        with pytest.raises(EmbeddedRedisError, match="another process"):
            EmbeddedRedis(tmp_path).start()


def test_long_data_dir_uses_short_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with EmbeddedRedis(deep) as server:
        sock = Path(server.url.removeprefix("unix://"))
        assert len(str(sock)) < 100
        assert redis.Redis.from_url(server.url).ping()
    assert not sock.exists()


def test_stop_is_idempotent_and_url_unavailable_after(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    server.start()
    server.stop()
    server.stop()
    with pytest.raises(EmbeddedRedisError):
        _ = server.url


def test_running_server_url_is_published_while_it_runs(tmp_path: Path) -> None:
    assert running_server_url(tmp_path) is None  # nothing ever ran there
    server = EmbeddedRedis(tmp_path, transport="tcp")
    url = server.start()
    try:
        assert (tmp_path / "redis" / URL_FILE).read_text().strip() == url
        assert running_server_url(tmp_path) == url
    finally:
        server.stop()
    assert not (tmp_path / "redis" / URL_FILE).exists()
    assert running_server_url(tmp_path) is None


def test_stale_url_file_of_a_killed_owner_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / ".lock").touch()
    (tmp_path / "redis" / URL_FILE).write_text("unix:///nowhere/redis.sock\n")
    assert running_server_url(tmp_path) is None  # nobody holds the lock
    with EmbeddedRedis(tmp_path) as server:  # and a new owner replaces it
        assert running_server_url(tmp_path) == server.url


def test_lock_held_without_url_raises_after_the_wait(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    with (tmp_path / "redis" / ".lock").open("ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(EmbeddedRedisError, match="REDIS_URL"):
            running_server_url(tmp_path, wait_s=0.1)


async def test_connect_redis_shares_a_running_server(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path) as server:
        handle = await connect_redis(None, tmp_path, share_running=True)
        try:
            assert handle.embedded is None and handle.url == server.url
            assert await handle.ping()
        finally:
            await handle.aclose()
        assert server.running  # the owner's server is left running


def test_bad_binary_reports_log(tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'boom: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(EmbeddedRedisError, match="boom"):
        EmbeddedRedis(tmp_path / "data", server_path=fake, startup_timeout_s=5).start()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_no_orphan_when_parent_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from router.redis.embedded import EmbeddedRedis
        s = EmbeddedRedis({str(tmp_path)!r})
        s.start()
        print(s.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=Path(__file__).parents[2]
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_no_orphan_on_normal_exit(tmp_path: Path) -> None:
    script = f"""
from router.redis.embedded import EmbeddedRedis
s = EmbeddedRedis({str(tmp_path)!r})
s.start()
print(s.pid, flush=True)
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        check=True,
        cwd=Path(__file__).parents[2],
        timeout=30,
    )
    child = int(out.stdout)
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


async def test_connect_redis_embedded_and_readyz(tmp_path: Path) -> None:
    handle = await connect_redis(None, tmp_path)
    try:
        assert handle.kind == "embedded"
        assert await handle.ping()
        await handle.client.set("x", "1")
        assert await handle.client.get("x") == "1"
    finally:
        await handle.aclose()
    assert handle.embedded is not None and not handle.embedded.running
    assert not await handle.ping(timeout_s=0.3)


async def test_connect_redis_url(redis_server: str) -> None:
    handle = await connect_redis(redis_server)
    try:
        assert handle.kind == "standalone"
        assert await handle.ping()
    finally:
        await handle.aclose()


async def test_connect_redis_unreachable_ping_false() -> None:
    handle = await connect_redis("redis://127.0.0.1:1/0", socket_timeout_s=0.2)
    try:
        assert not await handle.ping(timeout_s=0.5)
    finally:
        await handle.aclose()


async def test_connect_redis_parses_cluster_and_sentinel() -> None:
    cluster = await connect_redis("redis://127.0.0.1:1?cluster=true")
    assert cluster.kind == "cluster" and cluster.is_cluster
    await cluster.aclose()
    cluster2 = await connect_redis("redis+cluster://127.0.0.1:1")
    assert cluster2.kind == "cluster"
    await cluster2.aclose()
    sentinel = await connect_redis("redis+sentinel://u:secret@127.0.0.1:1,127.0.0.2:2/mymaster/3")
    assert sentinel.kind == "sentinel" and "secret" not in sentinel.url
    assert sentinel.sentinel is not None and len(sentinel.sentinel.sentinels) == 2
    await sentinel.aclose()
    with pytest.raises(ValueError, match="scheme"):
        await connect_redis("http://x")


def test_redact_and_default_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert redact_url("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"
    monkeypatch.setenv("ROUTER_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("ROUTER_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "hybrid-router"
