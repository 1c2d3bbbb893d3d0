"""Real traffic for the report tests: mock upstream + gateway + Redis, two teams with keys."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from router.ledger.record import LedgerRecord
from router.redis import keys as lk
from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess

ADMIN_KEY = "admin-test-key-5f2c"
"""``ROUTER_ADMIN_KEY`` of the test gateway."""
TEAMS = ("search", "support")
POLICY = """version: 1
auth: keys
defaults:
  retry: {attempts: 2, backoff_s: 0.01, max_backoff_s: 0.05}
  timeouts: {connect_s: 2, total_s: 20}
budgets:
  teams:
    search: {limit_usd: 5.0, window: day}
    support: {limit_usd: 0.01, window: month}
models:
  - name: mock-local
    backend: openai_compat
    tier: local
    endpoint: ${MOCK_UPSTREAM_URL}
    price: {input_usd_per_mtok: 0.05, output_usd_per_mtok: 0.10}
    capabilities: {tools: true, context_window: 128000}
    fallbacks: [mock-hosted]
  - name: mock-hosted
    backend: openai_compat
    tier: hosted
    endpoint: ${MOCK_UPSTREAM_URL}
    price: {input_usd_per_mtok: 2.50, output_usd_per_mtok: 10.00}
    capabilities: {tools: true, context_window: 128000}
routes:
  - alias: auto
    tiers:
      - {name: local, model: mock-local}
      - {name: hosted, model: mock-hosted, min_score: 0.5}
"""
"""Two tiers with pinned prices; team budgets so the report shows budget use."""
HARD = (
    "Prove step by step that the algorithm is correct, analyse its complexity, compare three "
    "alternative designs with trade-offs, and write the implementation with tests. "
)


@dataclass(frozen=True, slots=True)
class Stack:
    """The running gateway and what was sent through it."""

    gateway: GatewayProcess
    redis_url: str
    keys: dict[str, str]
    """Team -> virtual key secret."""
    sent: dict[str, int]
    """Team -> requests sent."""


def _send(client: httpx.Client, secret: str, i: int) -> None:
    model = "mock-hosted" if i % 4 == 3 else "auto"
    content = (HARD * 6 if i % 3 == 0 else "hi there ") + f"#{i}"
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 32}
    r = client.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {secret}"}
    )
    assert r.status_code == 200, r.text


def wait_for_records(redis_url: str, n: int, timeout_s: float = 20.0) -> None:
    """Block until the ledger stream holds at least ``n`` records (they are written async)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        deadline = time.monotonic() + timeout_s
        while int(client.xlen(lk.stream_key())) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"ledger has {client.xlen(lk.stream_key())} of {n} records")
            time.sleep(0.05)
    finally:
        client.close()


@contextlib.contextmanager
def mock_and_gateway(tmp: Path, env: dict[str, str]) -> Iterator[GatewayProcess]:
    """The mock upstream and a gateway on :data:`POLICY` with ``env`` added; both stopped after."""
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    with contextlib.ExitStack() as stack:
        mock = MockUpstreamProcess().start()
        stack.callback(mock.stop)
        full = {"MOCK_UPSTREAM_URL": mock.url, "ROUTER_ACCESS_LOG": "0", **env}
        gw = GatewayProcess(policy, env=full, log_path=tmp / "gateway.log").start()
        stack.callback(gw.stop)
        yield gw


@contextlib.contextmanager
def traffic(tmp: Path, redis_url: str, per_team: tuple[int, ...] = (12, 6)) -> Iterator[Stack]:
    """Start mock + gateway on ``redis_url``, send ``per_team`` requests per team, yield."""
    env = {"REDIS_URL": redis_url, "ROUTER_ADMIN_KEY": ADMIN_KEY}
    with mock_and_gateway(tmp, env) as gw:
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        keys: dict[str, str] = {}
        with httpx.Client(base_url=gw.base_url, timeout=30) as client:
            for team in TEAMS:
                r = client.post("/admin/keys", json={"team": team}, headers=admin)
                assert r.status_code == 201, r.text
                keys[team] = r.json()["key"]
            for team, n in zip(TEAMS, per_team, strict=True):
                for i in range(n):
                    _send(client, keys[team], i)
        total = sum(per_team)
        wait_for_records(redis_url, total)
        yield Stack(gw, redis_url, keys, dict(zip(TEAMS, per_team, strict=True)))


def history(now_s: float, hours: int = 20, per_hour: int = 24, seed: int = 7) -> list[LedgerRecord]:
    """A day of plausible past traffic (three teams, both tiers, cache hits), oldest first.

    Prices are the policy's (US dollars per million tokens); the counterfactual is the hosted
    price of the same tokens; cache hits cost nothing and take a few milliseconds.
    """
    rnd = random.Random(seed)
    out: list[LedgerRecord] = []
    start = now_s - hours * 3600
    for i in range(hours * per_hour):
        ts = start + i * 3600 / per_hour + rnd.random() * 60
        team = rnd.choices(("search", "support", "research"), (5, 3, 2))[0]
        hosted = rnd.random() < (0.25 + 0.25 * (team == "research"))
        prompt, completion = rnd.randint(80, 1500), rnd.randint(20, 600)
        hosted_usd = (prompt * 2.5 + completion * 10.0) / 1e6
        cache = rnd.choices(("miss", "exact", "semantic", "bypass"), (75, 12, 8, 5))[0]
        if cache in ("exact", "semantic"):
            cost, latency = 0.0, rnd.uniform(2, 15)
        elif hosted:
            cost, latency = hosted_usd, rnd.lognormvariate(6.5, 0.35)
        else:
            cost, latency = (prompt * 0.05 + completion * 0.1) / 1e6, rnd.lognormvariate(5.0, 0.4)
        out.append(
            LedgerRecord(
                ts=ts, request_id=f"hist-{i}", tenant="default", key_id=f"key-{team}",
                team=team, route="auto", tier="hosted" if hosted else "local",
                reason="history", score=rnd.random(),
                model="mock-hosted" if hosted else "mock-local", prompt_tokens=prompt,
                completion_tokens=completion, estimated=False, cost_usd=cost,
                counterfactual_usd=hosted_usd, cache=cache, latency_ms=round(latency, 3),
                policy_hash="history", status=200 if rnd.random() > 0.02 else 502,
                error=None, stream=rnd.random() < 0.5, fallback=False,
            )
        )  # fmt: skip
    return out


def seed(redis_url: str, records: list[LedgerRecord]) -> None:
    """Append ``records`` (oldest first, all in the past) to the ledger stream by their time."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        pipe = client.pipeline(transaction=False)
        for n, r in enumerate(records):
            pipe.xadd(lk.stream_key(), r.to_fields(), id=f"{int(r.ts * 1000)}-{n}")  # type: ignore[arg-type]
        pipe.execute()
    finally:
        client.close()
