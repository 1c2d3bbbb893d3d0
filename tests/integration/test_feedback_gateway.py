"""Feedback and metrics end to end: ``router serve`` with the mock upstream and a real Redis."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.redis.embedded import EmbeddedRedis
from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess

pytestmark = [pytest.mark.integration, pytest.mark.clock]
ROOT = Path(__file__).resolve().parents[2]
MSG = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("feedback")
    (tmp / "examples").mkdir()
    shutil.copy(ROOT / "policies" / "prices.yaml", tmp / "prices.yaml")
    policy = (ROOT / "policies" / "examples" / "mock.yaml").read_text()
    policy += "\nobservability:\n  feedback: {store_prompts: true}\n"
    (tmp / "examples" / "mock.yaml").write_text(policy)
    with (
        EmbeddedRedis(tmp / "redis", transport="tcp", appendfsync="no") as redis,
        MockUpstreamProcess() as mock,
        GatewayProcess(
            tmp / "examples" / "mock.yaml",
            env={"MOCK_UPSTREAM_URL": mock.url, "REDIS_URL": redis.url},
            log_path=tmp / "gateway.log",
        ) as gw,
    ):
        yield gw


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, timeout=30) as c:
        yield c


def _samples(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(r.text)
        for s in fam.samples
    }


def test_rate_a_request_then_see_it_in_metrics(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json={"model": "auto", "messages": MSG})
    assert r.status_code == 200
    rid = r.headers["x-request-id"]
    fb = client.post("/v1/feedback", json={"request_id": rid, "score": 5, "needed_strong": False})
    assert fb.status_code == 200, fb.text
    assert fb.json()["model"] == r.headers["x-router-model"]
    missing = client.post("/v1/feedback", json={"request_id": "nope", "thumbs": "up"})
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "request_id"
    bad = client.post("/v1/feedback", json={"request_id": rid, "score": "five"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "score"
    s = _samples(client)
    assert s[("router_feedback_total", (("kind", "score"),))] == 1
    served = [
        v
        for (name, labels), v in s.items()
        if name == "router_requests_total" and ("status", "200") in labels
    ]
    assert sum(served) >= 1
    assert ("router_classifier_drift_window_samples", ()) in s


def test_access_log_lines_carry_request_id_and_policy_hash(
    client: httpx.Client, gateway: GatewayProcess
) -> None:
    import orjson

    r = client.post("/v1/chat/completions", json={"model": "auto", "messages": MSG})
    rid = r.headers["x-request-id"]
    assert gateway.log_path is not None
    lines = [
        orjson.loads(line)
        for line in gateway.log_path.read_bytes().splitlines()
        if line.startswith(b"{") and rid.encode() in line
    ]
    assert lines, "no log line for the request"
    for line in lines:
        assert line["request_id"] == rid
        assert line["policy_hash"] == r.headers["x-router-policy"]
