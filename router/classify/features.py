"""Cheap structural features of a prompt, computed next to the embedding.

They carry what a mean-pooled, truncated embedding loses: how long the prompt really is, and
whether it holds code, math, several questions, numbered steps or explicit constraints. They are
counts of surface patterns (no vocabulary of any one data set), so they mean the same on coding,
math and multi-turn prompts that the training data does not cover. Every feature is
``log1p``-compressed so that one huge prompt cannot dominate.
"""

from __future__ import annotations

import math
import re

import numpy as np
import numpy.typing as npt

from router.classify.inputs import PromptText

CODE_FENCE = re.compile(r"```")
CODE_LINE = re.compile(
    r"^\s*(def |class |import |from \S+ import|#include|public |private |fn |func |let |const |"
    r"var |SELECT |return |for \(|while \(|if \().*|.*[;{}]\s*$",
    re.MULTILINE,
)
CODE_WORDS = re.compile(
    r"\b(function|algorithm|implement|refactor|debug|compile|regex|sql|python|javascript|"
    r"typescript|rust|golang|java|c\+\+|api|recursion|complexity|script|code|program)\b",
    re.IGNORECASE,
)
MATH = re.compile(
    r"(\\frac|\\sum|\\int|\\sqrt|\$[^$\n]+\$|\b\d+\s*[-+*/^=]\s*\d+|\b[a-z]\s*[=<>]\s*\d|"
    r"\b(prove|proof|integral|derivative|theorem|lemma|equation|probability|matrix|eigen\w*|"
    r"solve|polynomial|optimi[sz]e|logarithm|modulo|combinatoric\w*|calculate|compute)\b)",
    re.IGNORECASE,
)
STEPS = re.compile(
    r"(\bstep[- ]by[- ]step\b|\bfirst\b.*\bthen\b|\bfinally\b|^\s*(\d+[.)]|[-*•])\s+|"
    r"\b(explain why|compare|contrast|analy[sz]e|trade-?offs?|design|evaluate|derive|plan)\b)",
    re.IGNORECASE | re.MULTILINE,
)
CONSTRAINTS = re.compile(
    r"\b(must|should|exactly|at least|at most|no more than|without|ensure|only|never|always|"
    r"within|limit|constraint|requirement|format)\b",
    re.IGNORECASE,
)
DIGIT = re.compile(r"\d")

FEATURE_NAMES: tuple[str, ...] = (
    "log_tokens",
    "log_chars",
    "log_lines",
    "code",
    "math",
    "steps",
    "constraints",
    "questions",
    "digit_share",
    "turns",
    "log_context_chars",
)
"""The order of the columns :func:`prompt_features` returns (stored with a trained head)."""


def prompt_features(prompt: PromptText, user_tokens: int) -> npt.NDArray[np.float32]:
    """The feature vector of one prompt; ``user_tokens`` is its untruncated token count."""
    text = prompt.user
    fences = len(CODE_FENCE.findall(text)) // 2
    code = fences * 3 + min(len(CODE_LINE.findall(text)), 20) + len(CODE_WORDS.findall(text))
    n_chars = len(text)
    digits = len(DIGIT.findall(text)) / n_chars if n_chars else 0.0
    values = (
        math.log1p(max(0, user_tokens)),
        math.log1p(n_chars),
        math.log1p(text.count("\n")),
        math.log1p(code),
        math.log1p(len(MATH.findall(text))),
        math.log1p(len(STEPS.findall(text))),
        math.log1p(len(CONSTRAINTS.findall(text))),
        math.log1p(text.count("?")),
        digits,
        math.log1p(max(0, prompt.turns - 1)),
        math.log1p(len(prompt.context)),
    )
    return np.asarray(values, dtype=np.float32)


def feature_matrix(
    prompts: list[PromptText], user_tokens: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """Stack :func:`prompt_features` for a batch: ``[n, len(FEATURE_NAMES)]``."""
    if not prompts:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
    return np.stack([prompt_features(p, int(n)) for p, n in zip(prompts, user_tokens, strict=True)])
