"""The generated OpenAPI document: every reference resolves, and nested models never collide."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from router.api.embeddings import EmbeddingsRequest
from router.protocol import openapi
from router.protocol.openapi import openapi_document


def _refs(node: Any) -> set[str]:
    """Every ``$ref`` target below ``node``."""
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def test_every_reference_resolves() -> None:
    doc = openapi_document(embeddings=EmbeddingsRequest)
    schemas = doc["components"]["schemas"]
    refs = _refs(doc)
    assert "#/components/schemas/AnthropicError" in refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


def test_embeddings_body_is_the_endpoint_model() -> None:
    doc = openapi_document(embeddings=EmbeddingsRequest)
    assert doc["components"]["schemas"]["EmbeddingsRequest"] == EmbeddingsRequest.model_json_schema(
        by_alias=True, ref_template=openapi.REF_TEMPLATE
    )


def test_two_nested_models_of_one_name_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second ``Metadata`` (Messages has one) would silently replace the first's schema."""

    class Metadata(BaseModel):
        other: int

    class Holder(BaseModel):
        metadata: Metadata

    monkeypatch.setitem(openapi.BODIES, "Holder", Holder)
    with pytest.raises(ValueError, match="'Metadata'"):
        openapi_document(embeddings=EmbeddingsRequest)
