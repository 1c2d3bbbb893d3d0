"""A transparent, hand-weighted complexity score: the fallback when the trained model is absent.

The score is a logistic function of a few cheap signals of the last user turn (plus the number
of earlier turns). Each signal is documented in ``docs/routing.md``; the weights were set by hand
so that greetings and short factual questions land near 0.1-0.3 and long, multi-constraint
coding, math or reasoning tasks land above 0.7. It needs no model and runs in microseconds.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from router.classify.base import Classification
from router.classify.features import CODE_FENCE, CODE_LINE, CONSTRAINTS, STEPS, scan_window
from router.protocol.chat_request import ChatRequest

CODE_WORDS = re.compile(
    r"\b(function|algorithm|implement|refactor|debug|compile|regex|sql|python|javascript|"
    r"typescript|rust|golang|java|c\+\+|api|recursion|complexity|big-o|stack trace|segfault)\b",
    re.IGNORECASE,
)
MATH = re.compile(
    r"(\\frac|\\sum|\\int|\\sqrt|\$[^$]+\$|\b\d+\s*[-+*/^=]\s*\d+|\b[a-z]\s*[=<>]\s*\d|"
    r"\b(prove|proof|integral|derivative|theorem|lemma|equation|probability|matrix|eigen\w*|"
    r"solve for|polynomial|optimi[sz]e|logarithm|modulo|combinatoric\w*)\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class HeuristicFeatures:
    """The signals the heuristic reads from a request."""

    tokens: int
    """Approximate tokens in the last user turn (4 characters a token)."""
    code: int
    math: int
    steps: int
    constraints: int
    questions: int
    turns: int


def extract_features(req: ChatRequest) -> HeuristicFeatures:
    """Count the heuristic's signals in ``req``."""
    full = req.last_user_text()
    text = scan_window(full)
    low = text.lower()  # the shared word patterns are lower-case (router.classify.features)
    fences = len(CODE_FENCE.findall(text)) // 2
    return HeuristicFeatures(
        tokens=max(1, len(full) // 4),
        code=fences * 3 + min(len(CODE_LINE.findall(text)), 10) + len(CODE_WORDS.findall(text)),
        math=len(MATH.findall(text)),
        steps=len(STEPS.findall(low)),
        constraints=len(CONSTRAINTS.findall(low)),
        questions=full.count("?"),
        turns=sum(1 for m in req.messages if m.role in ("user", "assistant")),
    )


def heuristic_score(f: HeuristicFeatures) -> float:
    """Map features to P(the strong model is needed), in [0, 1]."""
    z = (
        -2.6
        + 0.45 * math.log1p(f.tokens)
        + 0.55 * math.log1p(f.code)
        + 0.6 * math.log1p(f.math)
        + 0.5 * math.log1p(f.steps)
        + 0.35 * math.log1p(f.constraints)
        + 0.2 * math.log1p(max(0, f.questions - 1))
        + 0.15 * math.log1p(max(0, f.turns - 1))
    )
    return 1.0 / (1.0 + math.exp(-z))


class HeuristicClassifier:
    """The :class:`~router.classify.base.Classifier` built on :func:`heuristic_score`."""

    source = "heuristic"

    async def classify(self, req: ChatRequest) -> Classification:
        """Score ``req`` inline: the work is a few regex scans, cheaper than a thread hop."""
        t0 = time.perf_counter()
        score = heuristic_score(extract_features(req))
        return Classification(
            score=score, source=self.source, latency_s=time.perf_counter() - t0, embedding=None
        )

    async def aclose(self) -> None:
        """Nothing to release."""
