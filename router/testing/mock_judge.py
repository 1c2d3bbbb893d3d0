"""A scripted pairwise judge for the mock upstream (drives the gateway's shadow labels).

A chat request whose last user message is a pairwise judge prompt (the format of
:mod:`router.learning.judge`: a ``[User Question]`` and two delimited answers) is answered with
a verdict chosen by ``MockConfig.judge``: the first rule whose key is a substring of the judged
question (``"*"`` matches any) says how to decide:

* ``longer`` / ``shorter``: the longer (shorter) answer wins, a tie when equal;
* ``first`` / ``second``: always A (B): a judge with pure position bias;
* ``tie``: always ``[[C]]``.

With the mock's per-model reply lengths (``mock-...-tokens-N`` upstream names), ``longer`` makes
the strong tier win: a test scripts which requests "needed" the strong model.
"""

from __future__ import annotations

from collections.abc import Mapping

QUESTION = "[User Question]\n"
A_START = "[The Start of Assistant A's Answer]\n"
A_END = "\n[The End of Assistant A's Answer]"
B_START = "[The Start of Assistant B's Answer]\n"
B_END = "\n[The End of Assistant B's Answer]"


def _between(text: str, start: str, end: str) -> str | None:
    i = text.find(start)
    if i < 0:
        return None
    j = text.find(end, i + len(start))
    return text[i + len(start) : j] if j >= 0 else None


def judge_reply(prompt: str, rules: Mapping[str, str]) -> str | None:
    """The scripted verdict (``[[A]]``, ``[[B]]`` or ``[[C]]``); None when ``prompt`` is not a
    judge prompt or no rule matches."""
    if not rules or QUESTION not in prompt:
        return None
    question = _between(prompt, QUESTION, "\n\n" + A_START.rstrip("\n")) or ""
    a = _between(prompt, A_START, A_END)
    b = _between(prompt, B_START, B_END)
    if a is None or b is None:
        return None
    rule = next((r for key, r in rules.items() if key != "*" and key in question), None)
    rule = rule or rules.get("*")
    if rule == "first":
        return "[[A]]"
    if rule == "second":
        return "[[B]]"
    if rule == "tie":
        return "[[C]]"
    if rule in ("longer", "shorter"):
        if len(a) == len(b):
            return "[[C]]"
        a_wins = (len(a) > len(b)) == (rule == "longer")
        return "[[A]]" if a_wins else "[[B]]"
    return None
