"""The OpenAPI document served at /openapi.json."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.unit.core.policy_text import write_policy
from tests.unit.observability.harness import Harness, harness


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async for x in harness(write_policy(tmp_path)):
        yield x


async def test_document_lists_the_public_endpoints(h: Harness) -> None:
    r = await h.client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {
        "/v1/chat/completions", "/v1/feedback", "/v1/models", "/healthz", "/readyz",
        "/metrics", "/openapi.json", "/admin/keys", "/admin/keys/{key_id}",
    }  # fmt: skip
    for path in doc["paths"].values():
        for op in path.values():
            assert op["operationId"] and "responses" in op
    refs = {"ChatRequest", "Feedback", "Error", "Message"}
    assert refs <= set(doc["components"]["schemas"])


async def test_every_documented_get_answers(h: Harness) -> None:
    doc = (await h.client.get("/openapi.json")).json()
    for path, ops in doc["paths"].items():
        if "get" in ops:
            r = await h.client.get(path)
            assert str(r.status_code) in ops["get"]["responses"], path
