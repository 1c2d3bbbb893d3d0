"""Shared pieces of the budget, key and ledger integration tests: policies, processes, clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import redis.asyncio as aredis
import time_machine

from router.keys.store import RedisKeyStore
from router.redis.embedded import EmbeddedRedis
from router.testing.gateway_process import GatewayProcess

ROOT = Path(__file__).resolve().parents[2]
PRICES = {
    "mock-local": (0.05, 0.10),
    "mock-hosted": (2.50, 10.00),
    "mock-hosted-backup": (3.00, 15.00),
    "flaky": (1.00, 4.00),
    "slow": (0.50, 2.00),
    "late": (0.50, 2.00),
}
"""Pinned prices of the test policies, US dollars per million tokens (input, output)."""


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """The cost the ledger must record for these tokens on ``model``."""
    inp, out = PRICES[model]
    return (prompt_tokens * inp + completion_tokens * out) / 1_000_000


def policy_yaml(
    *,
    auth: str = "keys",
    budgets: str = "",
    local_upstream: str = "mock-local",
    hosted_upstream: str = "mock-hosted",
    backup_upstream: str = "mock-hosted-backup",
    max_output_tokens: int = 512,
    hosted_fallbacks: str = "[mock-hosted-backup]",
    extra_models: str = "",
) -> str:
    """A policy on the mock upstream with pinned prices; ``budgets`` is YAML (indented 2)."""
    models = []
    for name, upstream, tier, fallbacks in (
        ("mock-local", local_upstream, "local", "[mock-hosted]"),
        ("mock-hosted", hosted_upstream, "hosted", hosted_fallbacks),
        ("mock-hosted-backup", backup_upstream, "hosted", "[]"),
    ):
        inp, out = PRICES[name]
        models.append(
            f"  - name: {name}\n"
            f"    backend: openai_compat\n"
            f"    upstream_model: {upstream}\n"
            f"    tier: {tier}\n"
            f"    endpoint: ${{MOCK_UPSTREAM_URL}}\n"
            f"    price: {{input_usd_per_mtok: {inp}, output_usd_per_mtok: {out}}}\n"
            f"    capabilities: {{tools: true, context_window: 128000, "
            f"max_output_tokens: {max_output_tokens}}}\n"
            f"    fallbacks: {fallbacks}\n"
        )
    return (
        "version: 1\n"
        f"auth: {auth}\n"
        "defaults:\n"
        "  retry: {attempts: 2, backoff_s: 0.01, max_backoff_s: 0.05}\n"
        "  timeouts: {connect_s: 2, total_s: 20}\n"
        + (f"budgets:\n{budgets}\n" if budgets else "")
        + "models:\n"
        + "".join(models)
        + extra_models
        + "routes:\n"
        "  - alias: auto\n"
        "    tiers:\n"
        "      - {name: local, model: mock-local}\n"
        "      - {name: hosted, model: mock-hosted, min_score: 0.5}\n"
    )


def write_policy(tmp: Path, **kw: object) -> Path:
    """Write :func:`policy_yaml` to ``tmp/policy.yaml``."""
    path = tmp / "policy.yaml"
    path.write_text(policy_yaml(**kw))  # type: ignore[arg-type]
    return path


@contextlib.contextmanager
def own_redis(tmp: Path) -> Iterator[str]:
    """A private embedded Redis (TCP) for tests that start gateway processes."""
    with EmbeddedRedis(tmp / "redis", transport="tcp", appendfsync="no") as server:
        yield server.url


def make_key(redis_url: str, team: str, budget_usd: float) -> tuple[str, str]:
    """Create a virtual key of ``team`` with a ``budget_usd`` limit; returns (secret, key id)."""

    async def create() -> tuple[str, str]:
        client = aredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            secret, key = await RedisKeyStore(client).create(team, budget_usd=budget_usd)
        finally:
            await client.aclose()
        return secret, key.id

    return asyncio.run(create())


def gateway(policy: Path, mock_url: str, redis_url: str, log: Path, **env: str) -> GatewayProcess:
    """A ``router serve`` process on ``policy`` with the mock upstream and a shared Redis."""
    return GatewayProcess(
        policy,
        env={
            "MOCK_UPSTREAM_URL": mock_url,
            "REDIS_URL": redis_url,
            "ROUTER_ACCESS_LOG": "0",
            **env,
        },
        log_path=log,
    )


def router_cli(*args: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    """Run ``router ARGS`` with ``REDIS_URL``; raises on a non-zero exit."""
    env = {**os.environ, "REDIS_URL": redis_url}
    return subprocess.run(
        [sys.executable, "-m", "router.cli.main", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def skip_unless_slow_selected(request: object) -> None:
    """Skip a slow scenario unless ``-m slow`` selected it or ``ROUTER_SLOW_TESTS=1`` is set."""
    import pytest

    config = request.config  # type: ignore[attr-defined]
    expr = str(config.getoption("markexpr") or "")
    wanted = "slow" in expr and "not slow" not in expr
    if not wanted and os.environ.get("ROUTER_SLOW_TESTS") != "1":
        pytest.skip("slow scenario: run with -m slow or ROUTER_SLOW_TESTS=1")


@contextlib.contextmanager
def early_in_a_minute() -> Iterator[None]:
    """Move this process's wall clock to 1 s into the next UTC minute, ticking on from there.

    Rate limits count in fixed UTC minutes: a test that fills a window must not have it roll
    over under it, whatever the time of day or the machine's speed.
    """
    start_s = (time.time() // 60 + 1) * 60 + 1
    with time_machine.travel(start_s, tick=True):
        yield
