"""Embeddings requests, vector encodings, and the policy rules for ``kind: embedding`` models."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from router.api.embeddings import encode_vector, parse_embeddings_request
from router.errors import InvalidRequest
from router.policy.schema import ModelSpec, Policy

CHAT: dict[str, Any] = {"name": "chat", "backend": "openai_compat", "endpoint": "http://x/v1"}
EMBED: dict[str, Any] = {"name": "minilm", "backend": "encoder", "kind": "embedding"}


def test_input_forms() -> None:
    assert parse_embeddings_request(b'{"model": "m", "input": "a"}').inputs() == ["a"]
    assert parse_embeddings_request(b'{"model": "m", "input": ["a", "b"]}').inputs() == ["a", "b"]
    assert parse_embeddings_request(b'{"model": "m", "input": [1, 2]}').inputs() == [[1, 2]]
    assert parse_embeddings_request(b'{"model": "m", "input": [[1], [2]]}').inputs() == [[1], [2]]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "a"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": ["a", ""]}, "input"),
        ({"model": "m", "input": 5}, "input"),
        ({"model": "m", "input": [-1]}, "input"),
        ({"model": "m", "input": [[1, 2], [3, -4]]}, "input"),
        ({"model": "m", "input": "a", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "m", "input": "a", "dimensions": 0}, "dimensions"),
    ],
)
def test_refusals_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_embeddings_request(orjson.dumps(body))
    assert err.value.param == param


def test_base64_is_little_endian_float32() -> None:
    vector = [0.5, -1.25, 3.0]
    packed = encode_vector(vector, "base64")
    assert isinstance(packed, str)
    assert np.frombuffer(base64.b64decode(packed), dtype="<f4").tolist() == vector
    assert encode_vector(np.asarray(vector, dtype=np.float32), "float") == vector


def test_policy_keeps_embedding_models_out_of_chat_routing() -> None:
    Policy.model_validate({"models": [CHAT, EMBED]})
    with pytest.raises(ValidationError, match="embedding model"):
        Policy.model_validate(
            {
                "models": [CHAT, EMBED],
                "routes": [{"alias": "auto", "tiers": [{"name": "t", "model": "minilm"}]}],
            }
        )
    with pytest.raises(ValidationError, match="embedding model"):
        Policy.model_validate({"models": [{**CHAT, "fallbacks": ["minilm"]}, EMBED]})


def test_model_spec_rules() -> None:
    with pytest.raises(ValidationError, match="kind: embedding"):
        ModelSpec.model_validate({"name": "e", "backend": "encoder"})
    with pytest.raises(ValidationError, match="backend must be"):
        ModelSpec.model_validate({"name": "e", "backend": "local", "kind": "embedding"})
    hosted = ModelSpec.model_validate({**CHAT, "name": "e3", "kind": "embedding"})
    assert hosted.kind == "embedding"
