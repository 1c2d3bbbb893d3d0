"""Fuzz the public HTTP surface from its own OpenAPI document: no 5xx on any input.

A live ``router serve`` (mock upstream, embedded Redis) is driven by schemathesis: for each
operation with a body, schema-violating (negative) and schema-conforming (positive) cases; for
the GETs, positive cases. Bounded to a few hundred examples so it stays under a minute.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from router.redis_embedded import EmbeddedRedis
from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
MOCK_POLICY = ROOT / "policies" / "examples" / "mock.yaml"
EXAMPLES = {  # (method, mode) -> examples per operation
    ("POST", GenerationMode.NEGATIVE): 80,
    ("POST", GenerationMode.POSITIVE): 30,
    ("GET", GenerationMode.POSITIVE): 3,
}
MALFORMED = [
    b"",
    b"{",
    b"null",
    b"[]",
    b'"text"',
    b"\xff\xfe\x00",
    b'{"model": "auto", "messages": "hello"}',
    b'{"request_id": {"$gt": ""}, "thumbs": "up"}',
    b"{" + b'"a":' * 5000 + b"1" + b"}" * 5000,
]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with (
        EmbeddedRedis(tmp / "redis", transport="tcp", appendfsync="no") as redis,
        MockUpstreamProcess() as mock,
        GatewayProcess(
            MOCK_POLICY,
            env={"MOCK_UPSTREAM_URL": mock.url, "REDIS_URL": redis.url, "ROUTER_ACCESS_LOG": "0"},
            log_path=tmp / "gateway.log",
        ) as gw,
    ):
        yield gw


def _fuzz(
    gateway: GatewayProcess, op: Any, mode: GenerationMode, n: int, statuses: Counter[int]
) -> None:
    """Run ``n`` examples of ``op`` in ``mode``; every answer must be below 500."""
    negative = mode is GenerationMode.NEGATIVE

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        r = case.call(base_url=gateway.base_url, timeout=15)
        statuses[r.status_code] += 1
        assert r.status_code < 500, (case.method, case.path, case.body, r.text[:300])
        if negative:
            assert r.status_code >= 400, (case.path, case.body)

    check()


@pytest.mark.timeout(300)
def test_no_server_error_on_generated_requests(gateway: GatewayProcess) -> None:
    schema = schemathesis.openapi.from_url(gateway.base_url + "/openapi.json")
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        op: Any = result.ok()  # type: ignore[union-attr]
        for (method, mode), n in EXAMPLES.items():
            if op.method.upper() == method:
                _fuzz(gateway, op, mode, n, statuses)
    assert sum(statuses.values()) >= 200
    assert statuses[200] > 0 and statuses[400] > 0


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/feedback"])
def test_malformed_bodies_are_4xx(gateway: GatewayProcess, path: str) -> None:
    with httpx.Client(base_url=gateway.base_url, timeout=15) as client:
        for body in MALFORMED:
            r = client.post(path, content=body, headers={"content-type": "application/json"})
            assert 400 <= r.status_code < 500, (body[:40], r.status_code, r.text[:200])
            assert r.json()["error"]["message"]
