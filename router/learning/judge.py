"""The pairwise judge: one prompt, asked in both orders, and the verdict that survives both.

The judge sees the user's question and two answers, labelled A and B, and answers ``[[A]]``,
``[[B]]`` or ``[[C]]`` (a tie), the convention of MT-Bench's pairwise judge. It is asked twice,
once with the weak answer first and once with the strong answer first: a judge that prefers a
position (say, always A) then gives one vote to each model and the pair reads as a tie, so
position bias cancels instead of becoming a label.

The label is "the strong answer is clearly better": the strong answer won in *both* orders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["A", "B", "C"]
"""A, B, or C for a tie."""
SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two "
    "AI assistants to the user question displayed below. Choose the assistant that follows the "
    "user's instructions and answers the user's question better: consider helpfulness, "
    "relevance, accuracy, depth and level of detail. Do not let the order in which the responses "
    "were presented, their length or the assistants' names influence you. Output your final "
    'verdict only, strictly in this format: "[[A]]" if assistant A is better, "[[B]]" if '
    'assistant B is better, and "[[C]]" for a tie.'
)
QUESTION_START = "[User Question]"
A_START = "[The Start of Assistant A's Answer]"
A_END = "[The End of Assistant A's Answer]"
B_START = "[The Start of Assistant B's Answer]"
B_END = "[The End of Assistant B's Answer]"
_BRACKETED = re.compile(r"\[\[\s*([ABC])\s*\]\]")
_BARE = re.compile(r"^\W*(A|B|C|TIE)\b", re.IGNORECASE)


def judge_messages(question: str, first: str, second: str, max_chars: int) -> list[dict[str, str]]:
    """The judge's chat messages with ``first`` as answer A and ``second`` as answer B."""
    body = (
        f"{QUESTION_START}\n{question[:max_chars]}\n\n"
        f"{A_START}\n{first[:max_chars]}\n{A_END}\n\n"
        f"{B_START}\n{second[:max_chars]}\n{B_END}"
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": body}]


def parse_verdict(text: str) -> Verdict | None:
    """The verdict in a judge's reply (the last ``[[X]]``, else a bare leading letter)."""
    found = _BRACKETED.findall(text)
    if found:
        last: Verdict = found[-1]
        return last
    m = _BARE.match(text.strip())
    if m is None:
        return None
    word = m.group(1).upper()
    return "C" if word == "TIE" else word  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Judgement:
    """Both orders' verdicts and what they add up to."""

    weak_first: Verdict
    """The verdict when the weak answer was A."""
    strong_first: Verdict
    """The verdict when the strong answer was A."""

    @property
    def strong_score(self) -> float:
        """The strong answer's mean result over both orders: 1 win, 0.5 tie, 0 loss."""
        one = {"B": 1.0, "C": 0.5, "A": 0.0}[self.weak_first]
        two = {"A": 1.0, "C": 0.5, "B": 0.0}[self.strong_first]
        return (one + two) / 2

    @property
    def strong_clearly_better(self) -> bool:
        """Whether the strong answer won in both orders (the label)."""
        return self.strong_score == 1.0

    @property
    def verdicts(self) -> str:
        """``"B,A"``: the weak-first verdict, then the strong-first one."""
        return f"{self.weak_first},{self.strong_first}"
