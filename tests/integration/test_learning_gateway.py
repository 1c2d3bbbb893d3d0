"""Shadow labels on a real gateway: the mock upstream answers both tiers and plays the judge.

The local tier answers in 10 words (streamed at 5 a second), the hosted tier in 24, and the
scripted judge prefers the longer answer: a shadowed request served locally gets the label
"the strong answer is clearly better" after both orders were asked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from router.redis.embedded import EmbeddedRedis
from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess
from tests.integration.learning_support import (
    HOSTED_WIRE,
    LOCAL_WIRE,
    chat,
    content,
    labels,
    ledger_rows,
    mock_stats,
    resolved,
    stats,
    wait_for,
    write_policy,
)

pytestmark = pytest.mark.integration
EMAIL = "jane.doe@example.com"


@pytest.fixture(scope="module")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``(redis_url, mock_url)`` shared by the module's gateways."""
    tmp = tmp_path_factory.mktemp("learning")
    with (
        EmbeddedRedis(tmp / "redis", transport="tcp", appendfsync="no") as server,
        MockUpstreamProcess(judge={"*": "longer"}, history_size=1000) as mock,
    ):
        yield server.url, mock.url


@pytest.fixture
def store(infra: tuple[str, str]) -> Iterator[redis.Redis]:
    """A client on the shared Redis, emptied for each test; the mock's counters reset."""
    client = redis.Redis.from_url(infra[0], decode_responses=True)
    client.flushall()
    httpx.post(infra[1].removesuffix("/v1") + "/_mock/reset", json={"keep_config": True})
    yield client
    client.close()


def _gateway(tmp: Path, infra: tuple[str, str], learning: str) -> GatewayProcess:
    policy = write_policy(tmp / "policy.yaml", learning)
    env = {"REDIS_URL": infra[0], "MOCK_UPSTREAM_URL": infra[1]}
    return GatewayProcess(policy, env=env, log_path=tmp / "gateway.log")


def _hosted_calls(mock_url: str) -> int:
    return int(mock_stats(mock_url)["by_model"].get(HOSTED_WIRE, 0))


def test_shadow_runs_after_the_streamed_response_and_leaves_it_unchanged(
    tmp_path: Path, infra: tuple[str, str], store: redis.Redis
) -> None:
    mock_url = infra[1]
    body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with _gateway(tmp_path, infra, "{shadow_share: 1.0, shadow_max_tokens: 64}") as gw:
        deltas: list[str] = []
        with httpx.stream("POST", gw.url + "/chat/completions", json=body, timeout=30) as r:
            assert r.headers["x-router-tier"] == "local"
            rid = r.headers["x-request-id"]
            lines = r.iter_lines()
            for line in lines:
                if line.startswith("data: {"):
                    deltas.append(_delta(line))
                    break
            # The client holds the first chunk; the rest is still being relayed (5 words a
            # second): nothing but the served request has reached the upstream.
            assert _hosted_calls(mock_url) == 0
            assert mock_stats(mock_url)["total_requests"] == 1
            for line in lines:
                if line.startswith("data: {"):
                    deltas.append(_delta(line))
        label = wait_for(lambda: labels(store), what="a shadow label")[0]
    assert label["request_id"] == rid and label["label"] == "1"
    assert label["verdicts"] == "B,A"  # weak first: B won; strong first: A won
    assert label["weak_model"] == "mock-local" and label["strong_model"] == "mock-hosted"
    assert orjson.loads(label["messages"]) == [{"role": "user", "content": "hi"}]
    # Order at the upstream: the served answer, then the other tier, then two judge calls.
    seen = [req["body"]["model"] for req in mock_stats(mock_url)["last_requests"]]
    assert seen == [LOCAL_WIRE, HOSTED_WIRE, HOSTED_WIRE, HOSTED_WIRE]
    # The client's answer is exactly the local model's own answer to the same request.
    direct = httpx.post(
        mock_url + "/chat/completions",
        json={"model": LOCAL_WIRE, "messages": body["messages"]},
    ).json()
    assert "".join(deltas) == direct["choices"][0]["message"]["content"]
    # Shadow spend is in the ledger as route "shadow", on no team and no key.
    rows = [row for row in ledger_rows(store) if row["route"] == "shadow"]
    assert sorted(row["tier"] for row in rows) == ["judge", "shadow"]
    assert all(row["team"] == "" and row["key_id"] == "" for row in rows)
    assert all(float(row["cost_usd"]) > 0 for row in rows)
    served = [row for row in ledger_rows(store) if row["request_id"] == rid]
    assert len(served) == 1 and served[0]["route"] == "auto"


def _delta(line: str) -> str:
    choices = orjson.loads(line.removeprefix("data: "))["choices"]
    return str(choices[0]["delta"].get("content") or "") if choices else ""


def test_a_shadowed_response_is_the_unshadowed_one(
    tmp_path: Path, infra: tuple[str, str], store: redis.Redis
) -> None:
    with _gateway(tmp_path, infra, "{shadow_share: 1.0, shadow_max_tokens: 64}") as gw:
        shadowed = chat(gw.base_url, "hello there")
        wait_for(lambda: labels(store), what="a shadow label")
    (tmp_path / "off").mkdir()
    with _gateway(tmp_path / "off", infra, "{shadow_share: 0.0}") as gw:
        plain = chat(gw.base_url, "hello there")
    assert content(shadowed) == content(plain)
    same = ("x-router-model", "x-router-tier", "x-router-score", "x-router-cost-usd")
    assert {h: shadowed.headers[h] for h in same} == {h: plain.headers[h] for h in same}
    assert not any("shadow" in h for h in shadowed.headers)


def test_the_shadow_budget_stops_shadowing(
    tmp_path: Path, infra: tuple[str, str], store: redis.Redis
) -> None:
    cap_usd = 0.004  # one shadow job's estimate (about $0.0026) fits, three never do
    learning = f"{{shadow_share: 1.0, shadow_max_tokens: 64, max_usd_per_day: {cap_usd}}}"
    with _gateway(tmp_path, infra, learning) as gw:
        for i in range(5):
            assert chat(gw.base_url, f"hello number {i}").status_code == 200
            wait_for(lambda i=i: resolved(store) == i + 1, what=f"shadow job {i}")  # type: ignore[misc]
    s = stats(store)
    assert 1 <= s["labels"] <= 2 and s["skipped_budget"] == 5 - s["labels"]
    assert len(labels(store)) == s["labels"]
    spent_nusd = sum(int(v) for v in (store.get(k) for k in store.keys("rl:{learn}:spend:*")) if v)
    assert 0 < spent_nusd <= cap_usd * 1e9
    shadow_cost = sum(float(r["cost_usd"]) for r in ledger_rows(store) if r["route"] == "shadow")
    assert shadow_cost == pytest.approx(spent_nusd / 1e9, rel=1e-6)
    assert _hosted_calls(infra[1]) == 3 * s["labels"]  # no call past the cap


def test_privacy_pinned_requests_are_never_shadowed(
    tmp_path: Path, infra: tuple[str, str], store: redis.Redis
) -> None:
    with _gateway(tmp_path, infra, "{shadow_share: 1.0, shadow_max_tokens: 64}") as gw:
        pinned = chat(gw.base_url, f"Please write to {EMAIL} and prove the theorem step by step")
        assert pinned.status_code == 200
        assert pinned.headers["x-router-privacy"] == "pinned-local"
        clean = chat(gw.base_url, "hello again")
        wait_for(lambda: labels(store), what="the clean request's label")
    assert [lab["request_id"] for lab in labels(store)] == [clean.headers["x-request-id"]]
    assert stats(store).get("shadowed") == 1
    hosted_bodies = [
        orjson.dumps(req["body"]).decode()
        for req in mock_stats(infra[1])["last_requests"]
        if req["body"]["model"] == HOSTED_WIRE
    ]
    assert hosted_bodies and not any(EMAIL in b for b in hosted_bodies)
