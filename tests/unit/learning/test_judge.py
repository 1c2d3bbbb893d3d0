"""The pairwise judge's prompt, verdict parsing, and the both-orders label."""

from __future__ import annotations

import pytest

from router.learning.judge import Judgement, judge_messages, parse_verdict
from router.testing.mock_judge import judge_reply


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("[[A]]", "A"),
        ("Assistant B is more precise. [[B]]", "B"),
        ("[[C]]", "C"),
        ("I first thought [[A]] but on reflection [[B]]", "B"),
        ("B", "B"),
        ("tie.", "C"),
        ("no idea", None),
        ("", None),
    ],
)
def test_parse_verdict(text: str, verdict: str | None) -> None:
    assert parse_verdict(text) == verdict


def test_label_needs_the_strong_answer_to_win_both_orders() -> None:
    assert Judgement("B", "A").strong_clearly_better  # weak first: B; strong first: A
    assert Judgement("B", "A").strong_score == 1.0
    assert not Judgement("B", "C").strong_clearly_better
    assert Judgement("B", "C").strong_score == 0.75
    assert Judgement("A", "B").strong_score == 0.0  # the weak answer won both


def test_position_bias_cancels_to_a_tie() -> None:
    always_a = Judgement("A", "A")
    always_b = Judgement("B", "B")
    assert always_a.strong_score == always_b.strong_score == 0.5
    assert not always_a.strong_clearly_better and not always_b.strong_clearly_better


def test_the_mock_judge_reads_the_gateways_prompt() -> None:
    msgs = judge_messages("Explain TCP slow start", "short", "a much longer answer", 1000)
    prompt = msgs[-1]["content"]
    assert judge_reply(prompt, {"*": "longer"}) == "[[B]]"
    assert judge_reply(prompt, {"*": "shorter"}) == "[[A]]"
    assert judge_reply(prompt, {"TCP": "first", "*": "second"}) == "[[A]]"
    assert judge_reply(prompt, {"UDP": "first"}) is None
    assert judge_reply("not a judge prompt", {"*": "longer"}) is None


def test_answers_are_cut_to_the_limit() -> None:
    msgs = judge_messages("q", "x" * 50, "y" * 50, 10)
    assert "x" * 11 not in msgs[-1]["content"] and "x" * 10 in msgs[-1]["content"]
