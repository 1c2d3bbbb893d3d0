"""The context-window gate counts with the target's own tokenizer where it is known: a local
model's (a byte-level tokenizer built here, one token a byte) and a hosted OpenAI model's
(tiktoken's o200k_base from the copy litellm ships: nothing is downloaded)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from router.backends.local import LocalBackend
from router.backends.token_count import TokenCounter, tiktoken_encoding_name
from router.context import RequestContext
from router.errors import ContextLengthExceeded
from router.policy.schema import ModelSpec, Policy
from router.protocol.chat_request import ChatRequest
from router.route.capabilities import estimate_prompt_tokens, near_limit_models
from router.route.decision import plan_request
from router.testing.scripted_engine import ScriptedEngine


def byte_tokenizer() -> Tokenizer:
    """A byte-level BPE with no merges: every UTF-8 byte is one token."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return tok


class ByteEngine(ScriptedEngine):
    """The scripted engine with a real tokenizer and a chat template of its own."""

    def __init__(self) -> None:
        super().__init__(context_window=4096)
        self.tokenizer = byte_tokenizer()

    def encode_chat(self, messages: Sequence[dict[str, str]]) -> list[int]:
        text = "".join(f"<{m['role']}>{m['content']}\n" for m in messages) + "<assistant>"
        ids: list[int] = self.tokenizer.encode(text).ids
        return ids


def _policy(local_window: int, hosted_window: int) -> Policy:
    return Policy.model_validate(
        {
            "models": [
                {
                    "name": "small",
                    "backend": "local",
                    "local": {"source": "scripted"},
                    "capabilities": {"context_window": local_window},
                },
                {
                    "name": "gpt",
                    "backend": "openai_compat",
                    "upstream_model": "gpt-4o-mini",
                    "capabilities": {"context_window": hosted_window},
                },
                {
                    "name": "mystery",
                    "backend": "openai_compat",
                    "upstream_model": "some-private-model",
                    "capabilities": {"context_window": hosted_window},
                },
            ],
            "routes": [
                {
                    "alias": "auto",
                    "tiers": [
                        {"name": "local", "model": "small"},
                        {"name": "hosted", "model": "gpt", "min_score": 0.5},
                    ],
                }
            ],
        }
    )


def _counter(pol: Policy) -> TokenCounter:
    spec = pol.model("small")
    assert spec is not None and spec.local is not None
    backend = LocalBackend()
    backend.add("small", spec.local, ByteEngine())
    return TokenCounter(lambda: backend)


def _req(text: str, model: str, **fields: Any) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": model, "messages": [{"role": "user", "content": text}], **fields}
    )


def _ctx() -> RequestContext:
    return RequestContext(request_id="r", tenant="t", key_id=None, team=None, started_at=0.0)


def _plan_exact(pol: Policy, req: ChatRequest) -> Any:
    counter = _counter(pol)
    return plan_request(pol, req, _ctx(), counter.count_many(near_limit_models(pol, req), req))


def test_the_local_tokenizer_refuses_what_the_estimate_lets_through() -> None:
    pol = _policy(local_window=200, hosted_window=200)
    req = _req("x" * 400, "small")  # about 104 tokens by the estimate; 400+ bytes
    assert estimate_prompt_tokens(req) < 200
    assert plan_request(pol, req, _ctx()).pinned is not None  # the estimate: it fits
    with pytest.raises(ContextLengthExceeded) as err:
        _plan_exact(pol, req)
    exact = len(ByteEngine().encode_chat([{"role": "user", "content": "x" * 400}]))
    assert err.value.code == "context_length_exceeded" and err.value.param == "messages"
    assert f"needs {exact} tokens" in err.value.message and "about" not in err.value.message


def test_a_route_skips_the_tier_its_tokenizer_says_is_too_small() -> None:
    pol = _policy(local_window=200, hosted_window=100_000)
    req = _req("x" * 400, "auto")
    assert {t.name for t in plan_request(pol, req, _ctx()).eligible} == {"local", "hosted"}
    plan = _plan_exact(pol, req)
    assert plan.pinned is not None and plan.pinned.name == "gpt"  # only the hosted tier fits


def test_the_hosted_tokenizer_lets_through_what_the_estimate_refuses() -> None:
    pol = _policy(local_window=200, hosted_window=130)
    req = _req("hello " * 100, "gpt")  # 154 tokens by the estimate, ~107 by o200k_base
    with pytest.raises(ContextLengthExceeded):
        plan_request(pol, req, _ctx())
    plan = _plan_exact(pol, req)
    assert plan.pinned is not None and plan.pinned.name == "gpt"
    with pytest.raises(ContextLengthExceeded):  # max_tokens counts on top of the exact count
        _plan_exact(pol, _req("hello " * 100, "gpt", max_tokens=40))


def test_an_unknown_tokenizer_keeps_the_estimate() -> None:
    pol = _policy(local_window=200, hosted_window=130)
    mystery = pol.model("mystery")
    assert mystery is not None and tiktoken_encoding_name(mystery) is None
    req = _req("hello " * 100, "mystery")
    assert _counter(pol).count_many([mystery], req) == {}
    with pytest.raises(ContextLengthExceeded) as err:
        _plan_exact(pol, req)
    assert "about" in err.value.message


def test_requests_far_from_every_window_are_not_counted() -> None:
    pol = _policy(local_window=8192, hosted_window=128_000)
    assert near_limit_models(pol, _req("a short question", "auto")) == []
    assert [m.name for m in near_limit_models(pol, _req("y" * 3000, "auto"))] == ["small"]


def test_hosted_counts_match_tiktoken_and_need_no_download() -> None:
    import tiktoken

    spec = ModelSpec.model_validate(
        {"name": "g", "backend": "openai_compat", "upstream_model": "openai/gpt-4o"}
    )
    req = _req("Count me, please: 1234 ünïcödé", "g")
    n = TokenCounter().count(spec, req)
    text = len(tiktoken.get_encoding("o200k_base").encode_ordinary(req.messages[0].text()))
    assert n == text + 4 + 3


def test_an_encoding_without_a_local_file_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "/nonexistent-tiktoken-cache")
    spec = ModelSpec.model_validate(
        {"name": "g", "backend": "openai_compat", "upstream_model": "gpt-4"}
    )
    assert TokenCounter().count(spec, _req("hi", "g")) is None
