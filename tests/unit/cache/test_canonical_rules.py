"""Canonical digests, key formats and cacheability rules (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from router.cache.canonical import canonicalize
from router.cache.rules import Directives, request_uncacheable, response_uncacheable
from router.policy.sections.cache import CacheSettings
from router.protocol.chat_request import ChatRequest
from router.redis import keys


def req(**kw: Any) -> ChatRequest:
    base: dict[str, Any] = {
        "model": "auto",
        "temperature": 0,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "What is the capital of France?"},
        ],
    }
    base.update(kw)
    return ChatRequest.model_validate(base)


def test_digest_ignores_transport_fields() -> None:
    a = canonicalize(req(), "t1")
    b = canonicalize(req(stream=True, stream_options={"include_usage": True}, user="u"), "t1")
    assert a.digest == b.digest and a.scope == b.scope


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.5},
        {"model": "gpt-4o"},
        {"max_tokens": 10},
        {"seed": 3},
        {"top_k": 5},
        {"response_format": {"type": "json_object"}},
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
    ],
)
def test_digest_and_scope_cover_parameters(change: dict[str, Any]) -> None:
    a, b = canonicalize(req(), "t1"), canonicalize(req(**change), "t1")
    assert a.digest != b.digest and a.scope != b.scope


def test_tenant_and_namespace_change_everything() -> None:
    a = canonicalize(req(), "t1")
    assert canonicalize(req(), "t2").digest != a.digest
    assert canonicalize(req(), "t2").scope != a.scope
    assert canonicalize(req(), "t1", "v2").digest != a.digest


def test_scope_excludes_last_user_message_only() -> None:
    a = canonicalize(req(), "t1")
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "other"}]
    b = canonicalize(req(messages=msgs), "t1")
    assert a.scope == b.scope and a.digest != b.digest and b.prompt == "other"
    msgs2 = [{"role": "system", "content": "be long"}, {"role": "user", "content": "other"}]
    assert canonicalize(req(messages=msgs2), "t1").scope != a.scope


def test_max_tokens_aliases_fold() -> None:
    assert (
        canonicalize(req(max_tokens=5), "t").digest
        == canonicalize(req(max_completion_tokens=5), "t").digest
    )


def test_keys_share_tenant_hash_tag() -> None:
    assert keys.exact_key("acme", "d") == "rc:{acme}:x:d"
    assert keys.vector_set_key("acme", "s") == "rc:{acme}:vs:s"
    assert keys.age_index_key("acme", "s") == "rc:{acme}:vz:s"
    odd = keys.exact_key("a}b{c", "d")
    assert odd.count("{") == 1 and odd.count("}") == 1
    assert keys.tenant_tag("a}b{c") != keys.tenant_tag("a}b{d")
    assert keys.tenant_pattern("acme") == "rc:{acme}:*"


def test_request_rules() -> None:
    s = CacheSettings()
    assert request_uncacheable(req(), s, False) is None
    assert request_uncacheable(req(temperature=None), s, False) == "temperature is not 0"
    assert request_uncacheable(req(temperature=0.7), s, False) == "temperature is not 0"
    hot = CacheSettings(cache_nonzero_temperature=True)
    assert request_uncacheable(req(temperature=0.7), hot, False) is None
    assert request_uncacheable(req(), s, True) == "tool-call turn"
    assert request_uncacheable(req(), CacheSettings(cache_tool_calls=True), True) is None
    off = CacheSettings(exact=False, semantic=False)
    assert request_uncacheable(req(), off, False) == "cache disabled"
    tool_msgs = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "1", "type": "function"}]},
        {"role": "tool", "tool_call_id": "1", "content": "42"},
    ]
    assert canonicalize(req(messages=tool_msgs), "t").has_tool_turns


def ok_body(**message: Any) -> dict[str, Any]:
    msg = {"role": "assistant", "content": "Paris", **message}
    return {"choices": [{"index": 0, "message": msg, "finish_reason": "stop"}]}


def test_response_rules() -> None:
    s = CacheSettings()
    assert response_uncacheable(ok_body(), s) is None
    assert response_uncacheable({"error": {"message": "x"}}, s) == "error body"
    assert response_uncacheable({"choices": []}, s) == "no choices"
    cut = {"choices": [{"index": 0, "message": {"content": "Pa"}, "finish_reason": None}]}
    assert response_uncacheable(cut, s) is not None
    calls = ok_body(tool_calls=[{"id": "c"}])
    assert response_uncacheable(calls, s) == "tool-call turn"
    assert response_uncacheable(calls, CacheSettings(cache_tool_calls=True)) is None
    filtered = {"choices": [{"index": 0, "message": {}, "finish_reason": "content_filter"}]}
    assert response_uncacheable(filtered, s) is not None


def test_directives() -> None:
    assert Directives.from_headers({}) == Directives(True, True, True)
    assert Directives.from_headers({"Cache-Control": "no-store"}) == Directives(False, False, False)
    assert Directives.from_headers({"cache-control": "max-age=0, no-cache"}) == Directives(
        False, False, True
    )
    assert Directives.from_headers({"X-Router-Cache-Mode": "exact"}) == Directives(
        True, False, True
    )
    assert Directives.from_headers({"x-router-cache-mode": "off"}).write is False
    assert Directives.from_headers({"x-router-cache-mode": "refresh"}).read_exact is False


def test_settings_forbid_unknown_and_frozen() -> None:
    with pytest.raises(ValidationError):
        CacheSettings.model_validate({"ttl": 5})
    with pytest.raises(ValidationError):
        CacheSettings(similarity_threshold=1.5)
    s = CacheSettings()
    with pytest.raises(ValidationError):
        s.ttl_s = 3  # type: ignore[misc]


def test_variant_separates_differently_routed_requests() -> None:
    a = canonicalize(req(), "t1")
    b = canonicalize(req(), "t1", variant="mock-hosted/hosted")
    assert a.digest != b.digest and a.scope != b.scope
