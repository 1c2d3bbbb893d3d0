"""Every log line in a request's context carries its request id and policy hash."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import structlog

from router.errors import UpstreamServerError
from tests.unit.core.policy_text import write_policy
from tests.unit.observability.harness import Harness, harness


@pytest.fixture
def lines() -> Iterator[list[MutableMapping[str, Any]]]:
    captured: list[MutableMapping[str, Any]] = []

    def keep(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        captured.append(dict(event))
        raise structlog.DropEvent

    old = structlog.get_config()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, keep],
        cache_logger_on_first_use=False,
    )
    try:
        yield captured
    finally:
        structlog.configure(**old)
        structlog.contextvars.clear_contextvars()


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async for x in harness(write_policy(tmp_path)):
        yield x


async def test_every_request_line_carries_request_id_and_policy_hash(
    h: Harness, lines: list[MutableMapping[str, Any]]
) -> None:
    h.backend.errors = {"small": [UpstreamServerError("boom", model="small")] * 2}
    r = await h.chat()
    await h.chat(extra_field=1)  # logs "extra_fields"
    events = {e["event"] for e in lines}
    assert {"upstream_failed", "request", "extra_fields"} <= events
    for e in lines:
        assert e.get("request_id"), e
        assert e.get("policy_hash") == r.headers["x-router-policy"], e
    first = next(e for e in lines if e["event"] == "upstream_failed")
    assert first["request_id"] == r.headers["x-request-id"]


async def test_rejected_request_lines_carry_both(
    h: Harness, lines: list[MutableMapping[str, Any]]
) -> None:
    r = await h.post(b"[1]", **{"x-request-id": "client-id-1"})
    assert r.status_code == 400
    rejected = [e for e in lines if e["event"] == "request_rejected"]
    assert rejected and rejected[0]["request_id"] == "client-id-1"
    assert rejected[0]["policy_hash"] == r.headers["x-router-policy"]
