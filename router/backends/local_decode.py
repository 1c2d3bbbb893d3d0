"""Turning generated token ids into streamed text, with stop sequences.

Tokens do not map to whole characters (a multi-byte character can span tokens) and a stop
sequence can span tokens too. :class:`TextAssembler` decodes the whole generated sequence after
each token, and releases only text that can no longer change: no trailing partial character
(``\\ufffd``), and no tail that could still grow into a stop sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Decode = Callable[[Sequence[int]], str]
"""Token ids to text, without special tokens."""

_REPLACEMENT = "\ufffd"


@dataclass(frozen=True, slots=True)
class Step:
    """What one more token released: ``text`` to send, and whether a stop sequence ended it."""

    text: str
    stopped: bool


def held_back_chars(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of some stop sequence."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest


class TextAssembler:
    """Accumulates generated token ids and yields the text that is safe to send."""

    def __init__(self, decode: Decode, stops: Sequence[str] = ()) -> None:
        self._decode = decode
        self._stops = tuple(s for s in stops if s)
        self._ids: list[int] = []
        self._sent_chars = 0
        self._text = ""

    @property
    def text(self) -> str:
        """Everything released so far."""
        return self._text

    def push(self, token_id: int) -> Step:
        """Add one generated token; return the newly releasable text."""
        self._ids.append(token_id)
        full = self._decode(self._ids)
        if full.endswith(_REPLACEMENT):
            return Step("", False)
        # A stop sequence may only start in text not released yet (or overlap its end).
        search_from = max(0, self._sent_chars - max((len(s) for s in self._stops), default=0))
        cut = min(
            (i for s in self._stops if (i := full.find(s, search_from)) >= 0),
            default=-1,
        )
        if cut >= 0:
            return self._release(full[:cut], stopped=True)
        safe = len(full) - held_back_chars(full, self._stops)
        return self._release(full[:safe], stopped=False)

    def finish(self) -> str:
        """Release the held-back tail at the end of generation (no stop sequence matched)."""
        full = self._decode(self._ids).rstrip(_REPLACEMENT)
        return self._release(full, stopped=False).text

    def _release(self, upto: str, *, stopped: bool) -> Step:
        if len(upto) <= self._sent_chars:
            return Step("", stopped)
        new = upto[self._sent_chars :]
        self._sent_chars = len(upto)
        self._text += new
        return Step(new, stopped)
