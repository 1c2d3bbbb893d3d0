"""Prompt-injection heuristics, with a slot for a learned classifier.

Each signal has a weight; a text's score is ``1 - prod(1 - w)`` over the signals it shows, so
one strong signal ("ignore all previous instructions") crosses the default threshold of 0.5 on
its own while a weak one (a fake role marker) needs company. Encoded payloads are decoded
(base64, hex, ROT13 when the text asks for it) and their plain text is scored too.

An :class:`InjectionClassifier` (any object with ``score(text) -> float``) can be passed to
:func:`assess`; its score is combined with the heuristics' by taking the larger.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

_I = re.IGNORECASE
_PREV = r"(?:previous|prior|preceding|above|earlier|foregoing|initial|original|system)"
_RULES = r"(?:instructions?|prompts?|rules|directions|directives|guidelines|context|messages?)"

SIGNALS: tuple[tuple[str, float, re.Pattern[str]], ...] = (
    (
        "override of earlier instructions",
        0.9,
        re.compile(
            rf"\b(?:ignore|disregard|forget|override|bypass|skip|drop)\b[\w\s,]{{0,20}}?"
            rf"\b(?:all\s+|any\s+|the\s+|your\s+|of\s+)*(?:{_PREV}\s+)+{_RULES}",
            _I,
        ),
    ),
    (
        "override of earlier instructions",
        0.8,
        re.compile(
            r"\b(?:forget|ignore|disregard)\s+(?:everything|all(?:\s+that)?)\s+"
            r"(?:you\s+(?:were|have\s+been)\s+told|above|before|so\s+far)",
            _I,
        ),
    ),
    (
        "new instructions replacing the system prompt",
        0.6,
        re.compile(r"\b(?:new|updated|real|actual)\s+(?:system\s+)?instructions?\s*:", _I),
    ),
    (
        "role-play jailbreak",
        0.85,
        re.compile(
            r"\b(?i:you\s+are|act\s+as|become|pretend\s+to\s+be|roleplay\s+as)\s+(?i:now\s+)?"
            r"(?:DAN|STAN|DUDE)\b|\bDAN\s+mode\b|(?i:\bdo\s+anything\s+now\b)|"
            r"(?i:\b(?:developer|god)\s+mode\s+(?:enabled|on|activated|output)\b)"
        ),
    ),
    ("jailbreak vocabulary", 0.35, re.compile(r"\bjailbr(?:eak|oken)\b", _I)),
    (
        "role-play jailbreak",
        0.8,
        re.compile(
            r"\b(?:pretend|act|behave|imagine|roleplay|role-play)\b[\w\s,]{0,30}?"
            r"\b(?:no|without|free\s+(?:of|from))\s+(?:any\s+)?"
            r"(?:restrictions|rules|filters|limits|limitations|guidelines|censorship|ethics|"
            r"content\s+polic(?:y|ies))",
            _I,
        ),
    ),
    (
        "role-play jailbreak",
        0.7,
        re.compile(
            r"\byou\s+are\s+(?:now\s+)?(?:an?\s+)?(?:unfiltered|uncensored|unrestricted|"
            r"unaligned|evil|rogue)\b",
            _I,
        ),
    ),
    (
        "system prompt exfiltration",
        0.85,
        re.compile(
            r"\b(?:reveal|show|print|repeat|output|display|leak|dump|tell\s+me|give\s+me|"
            r"what\s+(?:is|are|was|were))\b[\w\s,]{0,20}?\b(?:your|the)\s+(?:full\s+|exact\s+|"
            r"entire\s+|original\s+|hidden\s+|secret\s+|initial\s+)*(?:system\s+prompt|"
            r"system\s+message|initial\s+instructions|hidden\s+instructions|"
            r"original\s+instructions|developer\s+(?:message|prompt))",
            _I,
        ),
    ),
    (
        "system prompt exfiltration",
        0.75,
        re.compile(
            r"\b(?:repeat|print|output)\b[\w\s,]{0,20}?\b(?:text|words|everything)\s+"
            r"(?:above|before)\b(?:\s+this\s+line)?",
            _I,
        ),
    ),
    (
        "fake role or delimiter marker",
        0.4,
        re.compile(
            r"<\|(?:im_start|im_end|system|endoftext)\|>|\[/?INST\]|<</?SYS>>|"
            r"^\s*#{2,}\s*(?:system|assistant)\s*:|^\s*system\s*:\s",
            _I | re.MULTILINE,
        ),
    ),
    (
        "instruction to decode and follow a payload",
        0.5,
        re.compile(
            r"\b(?:decode|decrypt|deobfuscate)\b[\w\s,]{0,40}?\b(?:follow|execute|obey|run|do)\b",
            _I,
        ),
    ),
)
"""(name, weight, pattern) of each heuristic signal."""

_HIDDEN = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\U000e0000-\U000e007f]")
_B64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){16,}(?![0-9A-Fa-f])")
HIDDEN_WEIGHT = 0.5
ENCODED_WEIGHT = 0.95


class InjectionClassifier(Protocol):
    """A learned injection detector: the probability that ``text`` is an injection attempt."""

    def score(self, text: str) -> float:
        """A score in [0, 1]."""
        ...


@dataclass(frozen=True, slots=True)
class InjectionReport:
    """The verdict on a request: its score, the signals seen, and whether it crossed the bar."""

    score: float
    signals: tuple[str, ...]
    flagged: bool


def _plain_signals(text: str) -> list[tuple[str, float]]:
    return [(name, w) for name, w, rx in SIGNALS if rx.search(text)]


def _decoded(text: str) -> Iterable[str]:
    """Plain texts hidden in ``text``: base64 and hex runs, ROT13 when the text mentions it."""
    for m in _B64.finditer(text):
        blob = m.group()
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=False)
        except (binascii.Error, ValueError):
            continue
        decoded = raw.decode("utf-8", "ignore")
        if decoded and sum(c.isprintable() or c.isspace() for c in decoded) / len(decoded) > 0.9:
            yield decoded
    for m in _HEX.finditer(text):
        try:
            yield bytes.fromhex(m.group()).decode("utf-8", "ignore")
        except ValueError:
            continue
    if re.search(r"\brot-?13\b", text, _I):
        yield codecs.decode(text, "rot13")


def heuristic_signals(text: str) -> list[tuple[str, float]]:
    """Every (signal, weight) the heuristics see in ``text``."""
    found = _plain_signals(text)
    if _HIDDEN.search(text):
        found.append(("hidden or invisible characters", HIDDEN_WEIGHT))
    for plain in _decoded(text):
        if _plain_signals(plain):
            found.append(("encoded instructions", ENCODED_WEIGHT))
            break
    return found


def assess(
    texts: Iterable[str], threshold: float, classifier: InjectionClassifier | None = None
) -> InjectionReport:
    """Score ``texts`` (the messages to check) together against ``threshold``."""
    signals: dict[str, float] = {}
    model_score = 0.0
    for text in texts:
        if not text:
            continue
        for name, w in heuristic_signals(text):
            signals[name] = max(w, signals.get(name, 0.0))
        if classifier is not None:
            model_score = max(model_score, classifier.score(text))
    keep = 1.0
    for w in signals.values():
        keep *= 1.0 - w
    score = max(1.0 - keep, model_score)
    names = tuple(sorted(signals))
    if classifier is not None and model_score >= threshold:
        names += ("classifier",)
    return InjectionReport(score, names, score >= threshold)
