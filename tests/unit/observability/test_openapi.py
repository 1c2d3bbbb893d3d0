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
        "/v1/responses", "/v1/responses/{response_id}", "/v1/messages",
        "/v1/messages/count_tokens", "/v1/embeddings",
    }  # fmt: skip
    for path in doc["paths"].values():
        for op in path.values():
            assert op["operationId"] and "responses" in op
    refs = {"ChatRequest", "Feedback", "Error", "Message", "ResponsesRequest", "MessagesRequest"}
    refs |= {"CountTokensRequest", "EmbeddingsRequest", "AnthropicError", "Block"}
    assert refs <= set(doc["components"]["schemas"])


async def test_request_bodies_and_error_shapes_per_protocol(h: Harness) -> None:
    """Each endpoint's body is its adapter's model; Messages errors are Anthropic's shape."""
    doc = (await h.client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]

    def body_ref(path: str) -> str:
        schema = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        return str(schema["schema"]["$ref"]).rsplit("/", 1)[1]

    def error_ref(path: str, method: str = "post") -> str:
        schema = doc["paths"][path][method]["responses"]["400" if method == "post" else "404"]
        return str(schema["content"]["application/json"]["schema"]["$ref"]).rsplit("/", 1)[1]

    assert body_ref("/v1/responses") == "ResponsesRequest"
    assert body_ref("/v1/messages") == "MessagesRequest"
    assert body_ref("/v1/messages/count_tokens") == "CountTokensRequest"
    assert body_ref("/v1/embeddings") == "EmbeddingsRequest"
    assert schemas["MessagesRequest"]["required"] == ["model", "messages", "max_tokens"]
    assert schemas["EmbeddingsRequest"]["required"] == ["model", "input"]
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        assert error_ref(path) == "AnthropicError"
    for path in ("/v1/responses", "/v1/embeddings", "/v1/chat/completions"):
        assert error_ref(path) == "Error"
    assert error_ref("/v1/responses/{response_id}", "get") == "Error"
    assert schemas["AnthropicError"]["properties"]["type"]["const"] == "error"


async def test_every_documented_get_answers(h: Harness) -> None:
    doc = (await h.client.get("/openapi.json")).json()
    for path, ops in doc["paths"].items():
        if "get" in ops:
            r = await h.client.get(path)
            assert str(r.status_code) in ops["get"]["responses"], path
