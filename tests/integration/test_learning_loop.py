"""The whole loop on two real gateway replicas: shadow -> judge -> label -> `router learn` ->
guarded promotion -> hot-swap on both -> `router model rollback` on both.

The scripted judge disagrees with the shipped head: greetings "need" the strong tier (its longer
answer wins both orders) and proofs do not (the shorter, local answer wins). The candidate learns
that from the shadow labels, beats the shipped head on held-out labels, is promoted, and both
replicas serve it without a restart; a rollback puts the shipped head back on both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import redis

from router.redis.embedded import EmbeddedRedis
from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess
from tests.integration.learning_support import chat, labels, resolved, wait_for, write_policy

pytestmark = [pytest.mark.integration, pytest.mark.slow]
LEARNING = (
    "{shadow_share: 1.0, shadow_max_tokens: 64, min_new_labels: 20, folds: 4, head_poll_s: 0.2}"
)
GREETINGS = [f"hello, how is your day going? ({i})" for i in range(12)]
PROOFS = [f"Prove that the sum of the first {i + 3} odd numbers is a square, step by step."
          for i in range(12)]  # fmt: skip


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[list[GatewayProcess], dict[str, str]]]:
    """Two gateways on one Redis and one mock upstream, and the environment of the CLI."""
    tmp = tmp_path_factory.mktemp("loop")
    policy = write_policy(tmp / "policy.yaml", LEARNING, "{kind: trained, device: cpu}")
    judge = {"hello": "longer", "Prove": "shorter"}
    with (
        EmbeddedRedis(tmp / "redis", transport="tcp", appendfsync="no") as server,
        MockUpstreamProcess(judge=judge, history_size=1000) as mock,
    ):
        env = {"REDIS_URL": server.url, "MOCK_UPSTREAM_URL": mock.url, "ROUTER_POLICY": str(policy)}
        with (
            GatewayProcess(policy, env=env, log_path=tmp / "a.log") as a,
            GatewayProcess(policy, env=env, log_path=tmp / "b.log") as b,
        ):
            yield [a, b], env


def _head(gw: GatewayProcess) -> str:
    ready = httpx.get(gw.base_url + "/readyz").json()
    return str(ready["checks"]["learning"]["head"])


def _score(gw: GatewayProcess, prompt: str) -> float:
    r = chat(gw.base_url, prompt)
    assert r.status_code == 200
    return float(r.headers["x-router-score"])


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "router.cli.main", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def test_labels_promote_a_head_both_replicas_serve_then_roll_back(
    replicas: tuple[list[GatewayProcess], dict[str, str]],
) -> None:
    gws, env = replicas
    store = redis.Redis.from_url(env["REDIS_URL"], decode_responses=True)
    probe = "hello, how is your day going?"
    before = [_score(gw, probe) for gw in gws]
    assert before[0] == before[1] and all(_head(gw) == "policy" for gw in gws)
    for i, prompt in enumerate(GREETINGS + PROOFS, start=1):
        gw = gws[i % 2]  # traffic spread over both replicas
        assert chat(gw.base_url, prompt).status_code == 200
        # + 2: the probes above were shadowed too
        wait_for(lambda n=i: resolved(store) >= n + 2, what=f"shadow job {i}")  # type: ignore[misc]
    got = labels(store)
    assert len(got) >= len(GREETINGS + PROOFS)
    by_kind = {("hello" in lab["messages"], lab["label"]) for lab in got}
    assert (True, "1") in by_kind and (False, "0") in by_kind

    out = _cli(env, "learn")
    assert "promoted v1" in out, out
    for gw in gws:
        wait_for(lambda gw=gw: _head(gw) == "v1", what="the replica to swap to v1")  # type: ignore[misc]
    after = [_score(gw, probe) for gw in gws]
    assert after[0] == after[1] and after[0] > before[0]  # greetings now look like they need it
    listing = _cli(env, "model", "list")
    assert "* v1" in listing and "promote" in listing

    out = _cli(env, "model", "rollback")
    assert "rolled back v1" in out
    for gw in gws:
        wait_for(lambda gw=gw: _head(gw) == "policy", what="the replica to roll back")  # type: ignore[misc]
    assert [_score(gw, probe) for gw in gws] == before
    store.close()
