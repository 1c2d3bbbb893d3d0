"""The prompt-format gate: which kind of prompt this is, read from its text alone.

The signals that transfer across families split by format (docs/routing-lab.md, "Everything tried"):
what marks a hard multiple-choice question is not what marks a hard coding or open-ended
request. A type-gated head (:mod:`router.lab.gated`) keeps one set of weights per type, each
chosen by leave-one-family-out validation on the training families of that type. Lab tooling:
the shipped head does not read it (docs/routing-lab.md).

Types, first match wins:

- ``choice``: lettered options on their own lines (``A)``, ``A.``, ``(A)``, ``A:``), A and B at
  least: a multiple-choice question, whatever its subject;
- ``code``: a code fence, a ``[PYTHON]`` block or a request to write or fix a function,
  program, script, class, method, query or regex;
- ``math``: LaTeX;
- ``code`` again: two or more code-like lines (after LaTeX, whose lines end in braces);
- ``math`` again: an arithmetic expression such as ``3 + 4``;
- ``open``: everything else (chat, instructions, open questions).

Every pattern is linear-time on untrusted text (no nested quantifiers, bounded look-ahead), and
scans the same window as :mod:`router.classify.features`.
"""

from __future__ import annotations

import re

import numpy as np

from router.classify.features import CODE_LINE, scan_window
from router.classify.inputs import PromptText

PROMPT_TYPES: tuple[str, ...] = ("choice", "code", "math", "open")
"""Gate types, in the order of the head's per-type weight rows."""

OPTION = re.compile(r"^[ \t]*\(?([A-Ha-h])[).:][ \t]+(\S[^\n]*)$", re.MULTILINE)
CODE_BLOCK = re.compile(r"```|\[PYTHON\]|\[/PYTHON\]")
CODE_REQUEST = re.compile(
    r"\b(write|implement|create|fix|debug|refactor|complete)\b[^.\n]{0,60}?"
    r"\b(function|program|script|class|method|query|regex|code)\b"
)
LATEX = re.compile(r"\$[^$\n]{1,200}\$|\\\[|\\\(|\\frac|\\sqrt|\\cdot|\\le\b|\\ge\b|\^\{")
ARITHMETIC = re.compile(r"\b\d+\s*[-+*/^=]\s*\d+")


def options(text: str) -> list[str]:
    """The texts of the lettered options (``A) ...``) of a multiple-choice prompt, in order,
    when they start at A and run on consecutively (A, B, ...); otherwise empty."""
    out: list[str] = []
    for m in OPTION.finditer(text):
        letter = m.group(1).upper()
        if ord(letter) - ord("A") == len(out):
            out.append(m.group(2).strip())
        elif letter == "A":  # a second list starts: keep the later one
            out = [m.group(2).strip()]
    return out if len(out) >= 2 else []


def prompt_type(prompt: PromptText) -> str:
    """The gate type of ``prompt`` (one of :data:`PROMPT_TYPES`), from the last user turn."""
    text = scan_window(prompt.user)
    if options(text):
        return "choice"
    low = text.lower()
    if CODE_BLOCK.search(text) or CODE_REQUEST.search(low):
        return "code"
    # LaTeX lines end in braces, which CODE_LINE counts as code: LaTeX is checked first.
    if LATEX.search(text):
        return "math"
    if len(CODE_LINE.findall(text)) >= 2:
        return "code"
    if ARITHMETIC.search(text):
        return "math"
    return "open"


def option_spread(prompt: PromptText) -> float:
    """How unlike each other the options of a multiple-choice prompt are: the coefficient of
    variation of their lengths in characters (0 when not multiple choice).

    Why it can mark easy questions: options of very different length often have one that stands
    out (item-writing guidance warns against it), while options alike in form leave only the
    content to decide on.
    """
    opts = options(scan_window(prompt.user))
    if not opts:
        return 0.0
    lengths = np.asarray([len(o) for o in opts], dtype=np.float64)
    return float(lengths.std() / (lengths.mean() + 1.0))


def stem_share(prompt: PromptText) -> float:
    """The share of the user turn's characters before its first lettered option (the question
    itself, without the options and what follows them); 1.0 when not multiple choice.

    Token counts of a multiple-choice prompt mix the question with its options and answer
    instructions; this share scales the token count down to the question's part.
    """
    text = scan_window(prompt.user)
    if not options(text):
        return 1.0
    first = OPTION.search(text)
    start = first.start() if first is not None else len(text)
    return max(start, 1) / max(len(text), 1)
