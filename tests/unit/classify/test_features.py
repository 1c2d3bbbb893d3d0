"""The cheap prompt features: what they count, and that hostile text cannot stall them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from router.classify.features import (
    CODE_LINE,
    FEATURE_NAMES,
    SCAN_CHARS,
    STEPS,
    feature_matrix,
    prompt_features,
    scan_window,
)
from router.classify.heuristic import extract_features
from router.classify.inputs import PromptText
from router.protocol.chat_request import ChatRequest

CODE_STARTS = ("def ", "class ", "import ", "return ", "for (", "if (", "const ", "SELECT ")


def reference_code_lines(text: str) -> int:
    """CODE_LINE's meaning, line by line: a line that starts like code or ends in ; { or }."""
    count = 0
    for line in text.split("\n"):
        if line.lstrip(" \t").startswith(CODE_STARTS) or line.rstrip().endswith((";", "{", "}")):
            count += 1
    return count


def feature(prompt: PromptText, name: str, tokens: int = 10) -> float:
    return float(prompt_features(prompt, tokens)[FEATURE_NAMES.index(name)])


@pytest.mark.parametrize(
    "text",
    [
        "def f(x):\n    return x;\n",
        "x = 1;\nplain words\n  if (a) {\n}\n",
        "no code here at all",
        "a; b; c; but the line goes on",
        "\n\n\nclass A:\n\tpass\n",
    ],
)
def test_code_lines_match_the_line_by_line_reading(text: str) -> None:
    assert len(CODE_LINE.findall(text)) == reference_code_lines(text)


def test_steps_count_first_then_within_a_sentence_and_lists() -> None:
    assert len(STEPS.findall("First boil the water, then add the rice.".lower())) == 1
    assert len(STEPS.findall("1. mix\n2. bake\n- serve")) == 3
    far = "first " + "x" * 400 + " then"
    assert STEPS.findall(far) == []


def test_code_and_math_prompts_light_up_their_features() -> None:
    code = PromptText(user="```python\ndef f(x):\n    return x * 2;\n```\nRefactor this function.")
    plain = PromptText(user="What is the capital of France?")
    maths = PromptText(user="Prove that the integral of x^2 from 0 to 1 is 1/3, then solve 2x = 4.")
    assert feature(code, "code") > feature(plain, "code") == 0.0
    assert feature(maths, "math") > feature(plain, "math") == 0.0


def test_scan_window_keeps_head_and_tail_of_long_text() -> None:
    short = "abc" * 10
    assert scan_window(short) is short
    long = "H" * SCAN_CHARS + "middle" + "T" * SCAN_CHARS
    window = scan_window(long)
    assert len(window) == SCAN_CHARS + 1
    assert window.startswith("H") and window.endswith("T") and "middle" not in window


def test_length_features_still_see_the_whole_prompt() -> None:
    huge = PromptText(user="word\n" * 100_000)
    assert feature(huge, "log_chars") == pytest.approx(math.log1p(500_000))
    assert feature(huge, "log_lines") == pytest.approx(math.log1p(100_000))


# Each of these made one pattern backtrack quadratically before the patterns were anchored and
# bounded (minutes for a 4 MB body). The timeout is a hang guard, not a speed assertion.
HOSTILE = [
    "\n" * 4_000_000,
    " \n" * 2_000_000,
    "a;" * 2_000_000,
    "first " * 700_000,
    "then\n" + "first " * 700_000,
    "1 - " * 1_000_000,
    "$" + "a" * 4_000_000,
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:8]))
def test_hostile_text_is_scored_without_stalling(text: str) -> None:
    feats = feature_matrix([PromptText(user=text)], np.asarray([len(text)]))
    assert feats.shape == (1, len(FEATURE_NAMES))
    req = ChatRequest.model_validate(
        {"model": "auto", "messages": [{"role": "user", "content": text}]}
    )
    assert extract_features(req).tokens == len(text) // 4


def test_word_patterns_ignore_case() -> None:
    lower = PromptText(user="prove the theorem, then compute it. you must use python code.")
    upper = PromptText(user=lower.user.upper())
    np.testing.assert_array_equal(prompt_features(lower, 12), prompt_features(upper, 12))
