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
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from router.classify.inputs import PromptText

CODE_FENCE = re.compile(r"```")
# Every pattern below runs on untrusted text of any length, so none may backtrack
# quadratically: a line-start match may not skip newlines (``[ \t]*``, not ``\s*``), an
# end-of-line match is anchored at a line start (an unanchored ``.*[;{}]\s*$`` is retried at every
# offset of a long line: 2.7 s for one 20 kB line), and "first ... then" looks at most 300
# characters ahead. tests/unit/test_classify_features.py times them on adversarial input.
CODE_LINE = re.compile(
    r"^(?:[ \t]*(?:def |class |import |from \S+ import|#include|public |private |fn |func |let |"
    r"const |var |SELECT |return |for \(|while \(|if \().*|.*[;{}]\s*)$",
    re.MULTILINE,
)
# The word patterns below are lower-case and run on ``text.lower()``: re's IGNORECASE matching is
# about twice as slow, and on a 256-token prompt these patterns were 1 ms of the classifier's 12.
CODE_WORDS = re.compile(
    r"\b(function|algorithm|implement|refactor|debug|compile|regex|sql|python|javascript|"
    r"typescript|rust|golang|java|c\+\+|api|recursion|complexity|script|code|program)\b",
)
MATH = re.compile(
    r"(\\frac|\\sum|\\int|\\sqrt|\$[^$\n]+\$|\b\d+\s*[-+*/^=]\s*\d+|\b[a-z]\s*[=<>]\s*\d|"
    r"\b(prove|proof|integral|derivative|theorem|lemma|equation|probability|matrix|eigen\w*|"
    r"solve|polynomial|optimi[sz]e|logarithm|modulo|combinatoric\w*|calculate|compute)\b)",
)
STEPS = re.compile(
    r"(\bstep[- ]by[- ]step\b|\bfirst\b[^\n]{0,300}\bthen\b|\bfinally\b|^[ \t]*(\d+[.)]|[-*•])\s+|"
    r"\b(explain why|compare|contrast|analy[sz]e|trade-?offs?|design|evaluate|derive|plan)\b)",
    re.MULTILINE,
)
CONSTRAINTS = re.compile(
    r"\b(must|should|exactly|at least|at most|no more than|without|ensure|only|never|always|"
    r"within|limit|constraint|requirement|format)\b",
)
DIGIT = re.compile(r"\d")
SCAN_CHARS = 32_768
"""Pattern counts look at most this many characters (half from the head, half from the tail):
the counts are log-compressed, so more text changes nothing, and a 4 MB body may not cost
seconds. The longest training prompt is 4,868 characters."""


def scan_window(text: str, max_chars: int = SCAN_CHARS) -> str:
    """``text``, or its head and tail when longer than ``max_chars`` (what the patterns scan)."""
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    return text[:half] + "\n" + text[-half:]


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


class _Scan:
    """The text the patterns scan, and its lower-case copy, made on first use."""

    __slots__ = ("_low", "prompt", "text")

    def __init__(self, prompt: PromptText) -> None:
        self.prompt = prompt
        self.text = scan_window(prompt.user)
        self._low: str | None = None

    @property
    def low(self) -> str:
        if self._low is None:
            self._low = self.text.lower()
        return self._low


def _code(s: _Scan) -> float:
    fences = len(CODE_FENCE.findall(s.text)) // 2
    code = fences * 3 + min(len(CODE_LINE.findall(s.text)), 20) + len(CODE_WORDS.findall(s.low))
    return math.log1p(code)


_FEATURES: tuple[Callable[[_Scan, int], float], ...] = (
    lambda s, tokens: math.log1p(max(0, tokens)),
    lambda s, _: math.log1p(len(s.prompt.user)),
    lambda s, _: math.log1p(s.prompt.user.count("\n")),
    lambda s, _: _code(s),
    lambda s, _: math.log1p(len(MATH.findall(s.low))),
    lambda s, _: math.log1p(len(STEPS.findall(s.low))),
    lambda s, _: math.log1p(len(CONSTRAINTS.findall(s.low))),
    lambda s, _: math.log1p(s.text.count("?")),
    lambda s, _: len(DIGIT.findall(s.text)) / len(s.text) if s.text else 0.0,
    lambda s, _: math.log1p(max(0, s.prompt.turns - 1)),
    lambda s, _: math.log1p(len(s.prompt.context)),
)
"""How each column of :data:`FEATURE_NAMES` is computed, in that order."""


def prompt_features(
    prompt: PromptText, user_tokens: int, only: Sequence[int] | None = None
) -> npt.NDArray[np.float32]:
    """The feature vector of one prompt; ``user_tokens`` is its untruncated token count.

    With ``only`` (column indices), the other columns are left 0 and never computed: a head
    that gives them no weight does not read them, and the patterns are most of the cost."""
    scan = _Scan(prompt)
    if only is None:
        return np.asarray([f(scan, user_tokens) for f in _FEATURES], dtype=np.float32)
    out = np.zeros(len(_FEATURES), dtype=np.float32)
    for i in only:
        out[i] = _FEATURES[i](scan, user_tokens)
    return out


def feature_matrix(
    prompts: list[PromptText],
    user_tokens: npt.NDArray[np.int64],
    only: Sequence[int] | None = None,
) -> npt.NDArray[np.float32]:
    """Stack :func:`prompt_features` for a batch: ``[n, len(FEATURE_NAMES)]``."""
    if not prompts:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
    return np.stack(
        [prompt_features(p, int(n), only) for p, n in zip(prompts, user_tokens, strict=True)]
    )
