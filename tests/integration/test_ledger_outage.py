"""Redis killed under load, then restarted: nothing served is missing from the ledger.

A real gateway process, a real Redis (SIGKILLed, restarted on the same port 3 s later), 20
requests a second. Whatever the failure mode, once Redis is back and the gateway's ledger spool
is replayed:

* every request answered 200 has exactly one ledger row (and no request has two);
* the key's budget counter equals the sum of its ledger rows (spend reached the counters
  exactly once: settles and fail-open charges were replayed, idempotently);
* nothing stays reserved.

``fail_closed`` also shows readiness: ``/readyz`` is 503 while Redis is down and 200 after.
A third scenario kills the gateway too while Redis is down: the restarted gateway replays the
spool its predecessor left before it reports ready. The figures are in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aredis

from router.keys.store import RedisKeyStore
from router.redis.embedded import EmbeddedRedis
from router.testing.mock_process import MockUpstreamProcess
from tests.integration.budget_support import gateway, write_policy
from tests.integration.outage_support import (
    BODY,
    LoadResult,
    kill_redis,
    read_books,
    steady_load,
    wait_ready,
)

pytestmark = pytest.mark.integration
RATE_PER_S = 20.0
DURATION_S = 7.0
KILL_AT_S = 2.0
OUTAGE_S = 3.0


async def _make_key(redis_url: str, budget_usd: float) -> tuple[str, str]:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        secret, key = await RedisKeyStore(client).create("outage", budget_usd=budget_usd)
        return secret, key.id
    finally:
        await client.aclose()


def _policy(tmp: Path, mode: str, allowance_usd: float = 1.0, ttl_s: float = 60.0) -> Path:
    budgets = (
        "  global: {limit_usd: 100, window: day}\n"
        f"  on_store_error: {mode}\n"
        f"  local_allowance_usd: {allowance_usd}\n"
        f"  reservation_ttl_s: {ttl_s}\n"
    )
    return write_policy(
        tmp, budgets=budgets, hosted_upstream="mock-tokens-30", hosted_fallbacks="[]"
    )


def _run_outage(
    tmp: Path,
    mode: str,
    ttl_s: float = 60.0,
    linger_s: float = 0.0,
    health: list[int] | None = None,
) -> tuple[LoadResult, list[int], str, str, EmbeddedRedis]:
    """Load one gateway while Redis is killed and restarted; returns what the clients saw, the
    ``/readyz`` statuses polled during the run, the Redis URL, the key id and the server.
    ``health`` (when given) collects the ``/healthz`` statuses polled beside ``/readyz``."""
    server = EmbeddedRedis(tmp / "redis", transport="tcp", appendfsync="no")
    server.start()
    secret, key_id = asyncio.run(_make_key(server.url, 10.0))
    mock = MockUpstreamProcess(latency_ms=150).start()
    gw = gateway(_policy(tmp, mode, ttl_s=ttl_s), mock.url, server.url, tmp / "gw.log").start()
    ready: list[int] = []
    stop = threading.Event()

    def poll_ready() -> None:
        while not stop.is_set():
            try:
                ready.append(httpx.get(gw.base_url + "/readyz", timeout=3).status_code)
            except httpx.HTTPError:
                ready.append(0)
            if health is not None:
                try:
                    health.append(httpx.get(gw.base_url + "/healthz", timeout=3).status_code)
                except httpx.HTTPError:
                    health.append(0)
            time.sleep(0.25)

    poller = threading.Thread(target=poll_ready, daemon=True)
    result = LoadResult()
    try:
        poller.start()
        headers = {"authorization": f"Bearer {secret}", "x-router-route": "hosted"}
        events: dict[float, Callable[[], object]] = {
            KILL_AT_S: lambda: kill_redis(server),
            KILL_AT_S + OUTAGE_S: server.start,
        }
        asyncio.run(steady_load(gw.url, headers, RATE_PER_S, DURATION_S, events, result))
        wait_ready(gw)
        time.sleep(linger_s)  # the gateway's background upkeep keeps running meanwhile
    finally:
        stop.set()
        poller.join()
        gw.stop()
        mock.stop()
    return result, ready, server.url, key_id, server


def _warm_key(url: str, headers: dict[str, str]) -> None:
    """One request before the outage: a key looked up recently keeps working without Redis."""
    r = httpx.post(url + "/chat/completions", json=BODY, headers=headers, timeout=30)
    assert r.status_code == 200, r.text


def _check_books(result: LoadResult, redis_url: str, key_id: str) -> dict[str, int]:
    books = asyncio.run(read_books(redis_url))
    rows = books.rows_by_request()
    missing = result.ok_ids - set(rows)
    assert not missing, f"{len(missing)} of {len(result.ok_ids)} answered requests lack a row"
    assert max(rows.values()) == 1, rows.most_common(3)
    key_scopes = [k for k in books.scope_spent_nano if f":s:k:{key_id}:" in k]
    assert len(key_scopes) == 1
    counted = books.scope_spent_nano[key_scopes[0]]
    recorded = books.ledger_nano(key_id)
    assert abs(counted - recorded) <= len(books.records), (counted, recorded)
    assert all(v == 0 for v in books.scope_reserved_nano.values()), books.scope_reserved_nano
    return books.rollups


@pytest.mark.timeout(180)
def test_fail_open_outage_every_served_request_is_in_the_ledger(tmp_path: Path) -> None:
    result, ready, redis_url, key_id, server = _run_outage(tmp_path, "fail_open")
    try:
        ok = len(result.ok_ids)
        print(f"fail_open: {ok} of {len(result.statuses)} answered 200; {dict(result.codes)}")
        assert ok >= RATE_PER_S * DURATION_S * 0.8  # served through the outage
        rollups = _check_books(result, redis_url, key_id)
        unmetered = rollups.get("unmetered_nusd", 0)
        print(f"unmetered ${unmetered / 1e9:.6f} of ${rollups['cost_nusd'] / 1e9:.6f}")
        assert unmetered > 0  # the report can say how much was served without Redis
        assert 200 in ready and 503 not in ready  # fail_open: still ready while Redis is down
    finally:
        server.stop()


@pytest.mark.timeout(180)
def test_fail_closed_outage_in_flight_requests_keep_their_rows(tmp_path: Path) -> None:
    health: list[int] = []
    result, ready, redis_url, key_id, server = _run_outage(tmp_path, "fail_closed", health=health)
    try:
        ok = len(result.ok_ids)
        print(f"fail_closed: {ok} of {len(result.statuses)} answered 200; {dict(result.codes)}")
        assert result.codes["budget_store_unavailable"] > 0
        _check_books(result, redis_url, key_id)
        # not ready while Redis was down, ready again after
        assert 503 in ready and ready[-1] == 200, ready
        first_down = ready.index(503)
        assert 200 in ready[first_down:]
        # /healthz is about the process: an outage must not make liveness restart the replica.
        assert health and set(health) == {200}, health
    finally:
        server.stop()


@pytest.mark.timeout(180)
def test_fail_closed_outage_longer_than_the_hold_ttl(tmp_path: Path) -> None:
    """The holds of requests in flight when Redis died expire during the outage (TTL 2 s,
    outage 3 s): back, Redis reclaims them (charged at the reserved amount), then the
    replayed settles correct them to the actual cost. Counters still equal the ledger, and no
    request gets a second (``reclaimed``) row."""
    # linger past the reclaim grace (10 s): a wrongly reclaimed hold would get its row then
    result, _, redis_url, key_id, server = _run_outage(
        tmp_path, "fail_closed", ttl_s=2.0, linger_s=16.0
    )
    try:
        _check_books(result, redis_url, key_id)
        books = asyncio.run(read_books(redis_url))
        assert not [r for r in books.records if r.error == "reclaimed"]
    finally:
        server.stop()


@pytest.mark.timeout(180)
def test_a_restarted_gateway_replays_its_spool_before_ready(tmp_path: Path) -> None:
    """Redis down, requests served (fail_open) and spooled, the gateway SIGKILLed; Redis back;
    a new gateway on the same data directory is not ready until its predecessor's spool is in
    Redis."""
    server = EmbeddedRedis(tmp_path / "redis", transport="tcp", appendfsync="no")
    server.start()
    data_dir = tmp_path / "gw-data"
    try:
        secret, key_id = asyncio.run(_make_key(server.url, 10.0))
        policy = _policy(tmp_path, "fail_open")
        with MockUpstreamProcess() as mock:
            env = {"ROUTER_DATA_DIR": str(data_dir)}
            gw = gateway(policy, mock.url, server.url, tmp_path / "gw1.log", **env).start()
            headers = {"authorization": f"Bearer {secret}", "x-router-route": "hosted"}
            _warm_key(gw.url, headers)
            kill_redis(server)
            result = LoadResult()
            asyncio.run(steady_load(gw.url, headers, 10, 1.5, {}, result))
            time.sleep(0.3)  # the last records reach the spool (fsynced before they count)
            gw.kill()
            spooled = list((data_dir / "ledger-spool").glob("spool-*.jsonl"))
            assert spooled and sum(p.stat().st_size for p in spooled) > 0
            server.start()
            gw2 = gateway(policy, mock.url, server.url, tmp_path / "gw2.log", **env)
            gw2.start()  # returns once /readyz says 200
            try:
                assert not list((data_dir / "ledger-spool").glob("spool-*.jsonl"))
                assert len(result.ok_ids) >= 10
                _check_books(result, server.url, key_id)
            finally:
                gw2.stop()
    finally:
        server.stop()


@pytest.mark.timeout(120)
def test_a_full_spool_fails_readiness_and_stops_unmetered_serving(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", transport="tcp", appendfsync="no")
    server.start()
    try:
        secret, _ = asyncio.run(_make_key(server.url, 10.0))
        policy = _policy(tmp_path, "fail_open")
        with MockUpstreamProcess() as mock:
            env = {"ROUTER_LEDGER_SPOOL_MAX_BYTES": "4000"}
            with gateway(policy, mock.url, server.url, tmp_path / "gw.log", **env) as gw:
                headers = {"authorization": f"Bearer {secret}", "x-router-route": "hosted"}
                _warm_key(gw.url, headers)
                kill_redis(server)
                result = LoadResult()
                asyncio.run(steady_load(gw.url, headers, 10, 2.0, {}, result))
                body = httpx.get(gw.base_url + "/readyz", timeout=5)
                assert body.status_code == 503 and body.json()["status"] == "spool_full"
                assert result.codes["budget_store_unavailable"] > 0  # no unmetered serving
                assert len(result.ok_ids) >= 1
                server.start()
                wait_ready(gw)
                books = asyncio.run(read_books(server.url))
                assert result.ok_ids <= set(books.rows_by_request())
    finally:
        server.stop()
