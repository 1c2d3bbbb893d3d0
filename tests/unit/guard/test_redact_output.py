"""Placeholders, restoring (whole and across stream chunks), and output masking."""

from __future__ import annotations

from typing import Any

import pytest

from router.guard.output import HOLD_CHARS, MaskFilter, mask_text, masked_kinds
from router.guard.pii import find_pii
from router.guard.redact import Placeholders, RestoreFilter, redact_request
from router.guard.rewrite import AnswerRules, StreamRewriter
from router.policy.sections.guard import ALL_KINDS
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk, Usage

EMAIL = "jane.roe@example.com"
CARD = "4111 1111 1111 1111"


def _request(*messages: dict[str, Any], **extra: Any) -> ChatRequest:
    body = {"model": "auto", "messages": list(messages), **extra}
    req = ChatRequest.model_validate(body)
    req._raw = body
    return req


def test_same_value_same_placeholder_across_messages() -> None:
    req = _request(
        {"role": "system", "content": f"The user is {EMAIL}."},
        {"role": "user", "content": f"Email {EMAIL} and bob@example.org, card {CARD}."},
        user=EMAIL,
    )
    red = redact_request(req, ALL_KINDS, ("system", "user"))
    raw = red.request.raw_body()
    assert raw["messages"][0]["content"] == "The user is [EMAIL_1]."
    assert raw["messages"][1]["content"] == "Email [EMAIL_1] and [EMAIL_2], card [CARD_1]."
    assert raw["user"] == "[EMAIL_1]"
    assert red.request.messages[1].content == raw["messages"][1]["content"]
    assert red.count == 5
    assert EMAIL not in str(raw) and CARD not in str(raw)
    # the original request is untouched
    assert EMAIL in req.raw_body()["messages"][1]["content"]


def test_parts_and_tool_call_arguments_are_redacted_roles_respected() -> None:
    req = _request(
        {"role": "user", "content": [{"type": "text", "text": f"hi {EMAIL}"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "send", "arguments": f'{{"to": "{EMAIL}"}}'},
                }
            ],
        },
        {"role": "developer", "content": f"ops {EMAIL}"},
    )
    raw = redact_request(req, ALL_KINDS, ("user", "assistant")).request.raw_body()
    assert raw["messages"][0]["content"][0]["text"] == "hi [EMAIL_1]"
    assert raw["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"to": "[EMAIL_1]"}'
    assert raw["messages"][2]["content"] == f"ops {EMAIL}"  # role not scanned


def test_placeholder_already_in_client_text_is_never_issued() -> None:
    req = _request({"role": "user", "content": f"literal [EMAIL_1] and {EMAIL}"})
    red = redact_request(req, ALL_KINDS, ("user",))
    assert red.request.raw_body()["messages"][0]["content"] == "literal [EMAIL_1] and [EMAIL_2]"
    assert red.placeholders.restore("[EMAIL_1] / [EMAIL_2]") == f"[EMAIL_1] / {EMAIL}"


def test_restore_only_issued_placeholders() -> None:
    table = Placeholders()
    text = f"mail {EMAIL}"
    redacted = table.redact(text, find_pii(text))
    assert redacted == "mail [EMAIL_1]"
    assert table.restore("to [EMAIL_1], not [EMAIL_9] or [PHONE_1]") == (
        f"to {EMAIL}, not [EMAIL_9] or [PHONE_1]"
    )


def _split_everywhere(text: str) -> list[list[str]]:
    return [[text[:i], text[i:j], text[j:]] for i in range(len(text)) for j in range(i, len(text))]


def test_restore_filter_across_every_chunk_boundary() -> None:
    table = Placeholders()
    table.redact(EMAIL, find_pii(EMAIL))
    answer = "Hi [EMAIL_1], bye [EMAIL_1]! [x] [EMAIL_"
    expected = f"Hi {EMAIL}, bye {EMAIL}! [x] [EMAIL_"
    for parts in _split_everywhere(answer):
        f = RestoreFilter(table)
        out = "".join(f.feed(p) for p in parts) + f.flush()
        assert out == expected, parts


def test_mask_text_and_modes() -> None:
    text = f"key sk-proj-abcdefghijklmnopqrstuvwx12 mail {EMAIL}"
    secrets = masked_kinds("secrets", ALL_KINDS)
    assert mask_text(text, secrets) == (f"key [MASKED_SECRET] mail {EMAIL}", 1)
    everything = masked_kinds("pii", ("email",))
    assert mask_text(text, everything) == ("key [MASKED_SECRET] mail [MASKED_EMAIL]", 2)
    assert masked_kinds("off", ALL_KINDS) == ()


def test_mask_filter_across_chunk_boundaries() -> None:
    answer = f"Contact {EMAIL} or card {CARD} and sk-proj-abcdefghijklmnopqrstuvwx12 bye."
    expected, _ = mask_text(answer, ALL_KINDS)
    assert EMAIL not in expected
    for size in (1, 2, 3, 5, 7, 11, 64, 1000):
        f = MaskFilter(ALL_KINDS)
        pieces = [answer[i : i + size] for i in range(0, len(answer), size)]
        out = "".join(f.feed(p) for p in pieces) + f.flush()
        assert out == expected, size
        assert f.masked == 3


def test_mask_filter_holds_an_open_private_key_block() -> None:
    body = "\n".join(["MIIEowIBAAKCAQEAx" * 4] * 20)
    answer = f"here\n-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\nok"
    f = MaskFilter(ALL_KINDS)
    released = [f.feed(answer[i : i + 40]) for i in range(0, len(answer), 40)]
    assert all("MIIE" not in r for r in released)
    assert "".join(released) + f.flush() == "here\n[MASKED_SECRET]\nok"


def test_mask_filter_releases_plain_text_promptly() -> None:
    f = MaskFilter(("email",))
    out = f.feed("word " * 40)
    assert len(out) >= 200 - HOLD_CHARS - 5


def _chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> Chunk:
    return Chunk(
        data={
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
        },
        raw=b"original",
    )


def _rules(restore_tools: bool = False, mask: bool = False) -> AnswerRules:
    table = Placeholders()
    table.redact(EMAIL, find_pii(EMAIL))
    return AnswerRules(masked_kinds("pii", ALL_KINDS) if mask else (), table, restore_tools)


def test_stream_rewriter_restores_content_but_not_tool_arguments() -> None:
    rw = StreamRewriter(_rules())
    pieces = ["Dear [EMA", "IL_1", "], done"]
    out = [rw.chunk(_chunk({"content": p})) for p in pieces]
    tool = rw.chunk(
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"to":"[EMAIL_1]"}'}}]})
    )
    last = rw.chunk(_chunk({}, "stop"))
    text = "".join(c.data["choices"][0]["delta"].get("content", "") for c in [*out, last])
    assert text == f"Dear {EMAIL}, done"
    args = tool.data["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
    assert args == '{"to":"[EMAIL_1]"}'
    assert out[0].raw is None  # a rewritten chunk is re-serialised
    assert rw.tail() is None


def test_stream_rewriter_restores_tools_when_allowed_and_flushes_tail() -> None:
    rw = StreamRewriter(_rules(restore_tools=True))
    rw.chunk(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"to":"[EMA'}}]}))
    c = rw.chunk(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'IL_1]"}'}}]}))
    args = c.data["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
    assert args == f'{EMAIL}"}}'
    seen = rw.chunk(_chunk({"content": "see [EMAIL_"}))
    assert seen.data["choices"][0]["delta"]["content"] == "see "
    tail = rw.tail()
    assert tail is not None and tail.data["choices"][0]["delta"]["content"] == "[EMAIL_"


def test_stream_rewriter_keeps_untouched_chunks() -> None:
    rw = StreamRewriter(_rules())
    plain = _chunk({"role": "assistant", "content": ""})
    assert rw.chunk(plain) is plain
    usage = Chunk(data={"choices": [], "usage": {}}, usage=Usage(1, 1))
    assert rw.chunk(usage) is usage


def test_completion_rewrite_masks_then_restores() -> None:
    rules = _rules(mask=True)
    body: dict[str, Any] = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "[EMAIL_1] and leaked other@example.org",
                    "tool_calls": [{"function": {"name": "f", "arguments": '{"a":"[EMAIL_1]"}'}}],
                },
            }
        ]
    }
    out = rules.completion(body)
    msg = out["choices"][0]["message"]
    assert msg["content"] == f"{EMAIL} and leaked [MASKED_EMAIL]"
    assert msg["tool_calls"][0]["function"]["arguments"] == '{"a":"[EMAIL_1]"}'
    assert body["choices"][0]["message"]["content"].startswith("[EMAIL_1]")  # not mutated


@pytest.mark.parametrize("n", [1, 2])
def test_restore_filter_flush_is_idempotent(n: int) -> None:
    f = RestoreFilter(Placeholders())
    assert f.feed("[EM" * n) == "[EM" * (n - 1)
    assert f.flush() == "[EM"
    assert f.flush() == ""


def test_mask_filter_long_token_is_released_intact() -> None:
    blob = "x" * 5000
    f = MaskFilter(ALL_KINDS)
    out = "".join(f.feed(blob[i : i + 4]) for i in range(0, len(blob), 4)) + f.flush()
    assert out == blob
