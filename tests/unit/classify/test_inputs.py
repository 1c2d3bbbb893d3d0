"""Encoder input construction: head+tail truncation, chat context, layout."""

from __future__ import annotations

import pytest

from router.classify.inputs import (
    CHARS_PER_TOKEN_BOUND,
    PromptText,
    assemble,
    clip_chars,
    head_tail,
    prompt_from_messages,
)


def test_head_tail_keeps_both_ends() -> None:
    ids = list(range(100))
    out = head_tail(ids, 10)
    assert out == [0, 1, 2, 3, 4, 95, 96, 97, 98, 99]


def test_head_tail_short_input_unchanged() -> None:
    assert head_tail([1, 2, 3], 10) == [1, 2, 3]
    assert head_tail([1, 2, 3], 0) == []


def test_assemble_budget_and_layout() -> None:
    seq = assemble(list(range(10, 60)), [7, 8, 9], max_tokens=16, cls_id=1, sep_id=2,
                   context_tokens=2)  # fmt: skip
    assert len(seq) == 16
    assert seq[0] == 1 and seq[-1] == 2
    assert seq[1:4] == [8, 9, 2]  # the most recent context tokens, then [SEP]
    assert seq[4] == 10 and seq[-2] == 59  # head and tail of the user turn


def test_assemble_rejects_tiny_budget() -> None:
    with pytest.raises(ValueError):
        assemble([1], [], max_tokens=2, cls_id=1, sep_id=2, context_tokens=0)


def test_prompt_from_messages_uses_last_user_turn_and_context() -> None:
    p = prompt_from_messages(
        [("system", "You are terse."), ("user", "write a sort"), ("assistant", "def s(x): ..."),
         ("user", "now make it stable")],
        context_chars=20,
    )  # fmt: skip
    assert p.user == "now make it stable"
    assert p.context.endswith("def s(x): ...")
    assert len(p.context) == 20
    assert p.turns == 3


def test_prompt_without_user_turn() -> None:
    p = prompt_from_messages([("system", "only a system prompt")])
    assert p == PromptText(user="only a system prompt", context="", turns=0)


def test_clip_chars_bounds_long_text() -> None:
    text = "a" * 10_000 + "MIDDLE" + "b" * 10_000
    out = clip_chars(text, 16)
    assert len(out) <= CHARS_PER_TOKEN_BOUND * 16 + 1
    assert out.startswith("a") and out.endswith("b") and "MIDDLE" not in out
    assert clip_chars("short", 16) == "short"
