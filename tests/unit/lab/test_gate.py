"""The prompt-format gate: type detection, options, option spread and the question's share."""

from __future__ import annotations

import pytest

from router.classify.inputs import PromptText
from router.lab.gate import (
    PROMPT_TYPES,
    option_spread,
    options,
    prompt_type,
    stem_share,
)

MMLU = "Find the degree of Q(sqrt(2)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:"
ARC = (
    "Which statement describes how this technology will benefit the environment?\n"
    "A) The Sun's abundant supply of energy will be used.\nB) Hydrogen is understood.\n"
    'Print only a single choice from "A" or "B" without explanation.\nAnswer:'
)
WINOGRANDE = (
    "The drink was rich in caffeine because the _ was weak.\nA) caffeine\nB) sugar\nAnswer:"
)
CRUX = "Complete the assertion.\n[PYTHON]\ndef f(x):\n    return x\nassert f(1) == ??\n[/PYTHON]"
MBPP = "Write a python function to count inversions in an array."
LATEX = r"Find the sum of all integers with \[ |x|+1>7 \]."
ARITHMETIC = "What is 17 * 23?"
CHAT = "What are the names of some famous actors that started their careers on Broadway?"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (MMLU, "choice"),
        (ARC, "choice"),
        (WINOGRANDE, "choice"),
        ("Pick one:\n(A) red\n(B) blue", "choice"),
        (CRUX, "code"),
        (MBPP, "code"),
        ("```\nx = 1\n```", "code"),
        ("int a = 1;\nint b = 2;\n", "code"),
        (LATEX, "math"),
        ("Let $x^2 = 4$. Find x.", "math"),
        (ARITHMETIC, "math"),
        (CHAT, "open"),
        ("hi", "open"),
        ("", "open"),
    ],
)
def test_prompt_type_reads_the_format(text: str, kind: str) -> None:
    assert prompt_type(PromptText(user=text)) == kind
    assert kind in PROMPT_TYPES


def test_latex_lines_ending_in_braces_are_math_not_code() -> None:
    text = "Compute \\frac{1}{2} + x^{2}\nwhere \\sqrt{x} = {3}\n"
    assert prompt_type(PromptText(user=text)) == "math"


def test_options_need_a_and_b_in_order() -> None:
    assert options(MMLU) == ["0", "4", "2", "6"]
    assert options("A) only one option") == []
    assert options("B) starts late\nC) and goes on") == []
    assert options("a) lower\nb) case") == ["lower", "case"]
    # a second list starting at A replaces the first
    assert options("A) x\nB) y\nthen\nA) p\nB) q\nC) r") == ["p", "q", "r"]


def test_option_spread_is_zero_without_options_and_grows_with_unlike_options() -> None:
    assert option_spread(PromptText(user=CHAT)) == 0.0
    alike = option_spread(PromptText(user="Q?\nA) cat\nB) dog\nC) cow"))
    unlike = option_spread(PromptText(user="Q?\nA) cat\nB) a very long option indeed\nC) cow"))
    assert alike == 0.0
    assert unlike > 0.3


def test_stem_share_is_the_question_part_of_a_choice_prompt() -> None:
    assert stem_share(PromptText(user=CHAT)) == 1.0
    text = "Why?\nA) one\nB) two"
    assert stem_share(PromptText(user=text)) == pytest.approx(len("Why?\n") / len(text))
