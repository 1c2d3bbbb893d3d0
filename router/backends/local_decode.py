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
    """Accumulates generated token ids and yields the text that is safe to send.

    Decoding works on a short window (the tokens since the last released character plus the
    few before them, for context such as a leading space), so each token costs the same however
    long the output grows.
    """

    def __init__(self, decode: Decode, stops: Sequence[str] = ()) -> None:
        self._decode = decode
        self._stops = tuple(s for s in stops if s)
        self._longest_stop = max((len(s) for s in self._stops), default=0)
        self._ids: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0
        self._decoded = ""
        self._sent_chars = 0

    @property
    def text(self) -> str:
        """Everything released so far."""
        return self._decoded[: self._sent_chars]

    def push(self, token_id: int) -> Step:
        """Add one generated token; return the newly releasable text."""
        self._ids.append(token_id)
        if not self._decode_new(final=False):
            return Step("", False)
        return self._release_checked(final=False)

    def finish(self) -> str:
        """Release the held-back tail at the end of generation; a stop sequence that the tail
        completes still cuts it."""
        self._decode_new(final=True)
        return self._release_checked(final=True).text

    def _decode_new(self, *, final: bool) -> bool:
        """Decode the window; True when it yielded new complete characters."""
        prefix = self._decode(self._ids[self._prefix_offset : self._read_offset])
        window = self._decode(self._ids[self._prefix_offset :])
        if final:
            window = window.rstrip(_REPLACEMENT)
        elif window.endswith(_REPLACEMENT):
            return False  # a character is still incomplete
        if len(window) <= len(prefix):
            return False
        self._decoded += window[len(prefix) :]
        self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
        return True

    def _release_checked(self, *, final: bool) -> Step:
        full = self._decoded
        # A stop sequence may only start in text not released yet (or overlap its end).
        search_from = max(0, self._sent_chars - self._longest_stop)
        cut = min(
            (i for s in self._stops if (i := full.find(s, search_from)) >= 0),
            default=-1,
        )
        if cut >= 0:
            return self._release(cut, stopped=True)
        safe = len(full) if final else len(full) - held_back_chars(full, self._stops)
        return self._release(safe, stopped=False)

    def _release(self, upto: int, *, stopped: bool) -> Step:
        if upto <= self._sent_chars:
            return Step("", stopped)
        new = self._decoded[self._sent_chars : upto]
        self._sent_chars = upto
        return Step(new, stopped)
