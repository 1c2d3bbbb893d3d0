"""Output checks: secrets and PII in a hosted model's answer are masked before the client sees
them (``guard.output: secrets | pii``).

A mask reads ``[MASKED_EMAIL]``, ``[MASKED_SECRET]``...: unlike a redaction placeholder it has no
number and is never restored. For streams, :class:`MaskFilter` holds back a short tail (and any
token still growing at the end of the text, and an open private-key block) so that a value split
across chunks is still seen whole.
"""

from __future__ import annotations

from collections.abc import Iterable

from router.guard.pii import ALL_KINDS, SECRET_KINDS, PiiKind, find_pii
from router.guard.redact import TAGS
from router.guard.settings import OutputMask

HOLD_CHARS = 64
"""Characters always held back at the end of a streamed text."""
MAX_HOLD_CHARS = 16384
"""Past this much held text, the filter releases (masked) text even mid-token."""
_KEY_BEGIN = "-----BEGIN "


def masked_kinds(mode: OutputMask, detect: Iterable[PiiKind]) -> tuple[PiiKind, ...]:
    """The kinds a mask mode hides: none, secrets only, or secrets and every detected kind."""
    if mode == "off":
        return ()
    if mode == "secrets":
        return tuple(SECRET_KINDS)
    wanted = set(detect) | SECRET_KINDS
    return tuple(k for k in ALL_KINDS if k in wanted)


def mask_text(text: str, kinds: tuple[PiiKind, ...]) -> tuple[str, int]:
    """``text`` with every finding of ``kinds`` masked, and how many were masked."""
    if not kinds or not text:
        return text, 0
    found = find_pii(text, kinds)
    if not found:
        return text, 0
    out: list[str] = []
    pos = 0
    for f in found:
        out.append(text[pos : f.start])
        out.append(f"[MASKED_{TAGS[f.kind]}]")
        pos = f.end
    out.append(text[pos:])
    return "".join(out), len(found)


class MaskFilter:
    """Masks streamed text; releases it once no value can still straddle the release point."""

    def __init__(self, kinds: tuple[PiiKind, ...]) -> None:
        self._kinds = kinds
        self._buf = ""
        self.masked = 0
        """Values masked so far."""

    def _mask(self, text: str) -> str:
        out, n = mask_text(text, self._kinds)
        self.masked += n
        return out

    def _cut(self) -> int:
        buf = self._buf
        cut = len(buf) - HOLD_CHARS
        if cut <= 0:
            return 0
        while cut > 0 and not buf[cut - 1].isspace():  # never split a token
            cut -= 1
        opened = buf.rfind(_KEY_BEGIN, 0, cut)
        if opened >= 0 and "-----END " not in buf[opened:]:
            cut = opened
        for f in find_pii(buf, self._kinds):
            if f.start < cut < f.end:
                cut = f.start
        return cut

    def feed(self, text: str) -> str:
        """The masked text that can be released now."""
        self._buf += text
        cut = self._cut()
        if cut == 0 and len(self._buf) > MAX_HOLD_CHARS:
            cut = len(self._buf) - HOLD_CHARS
        if cut <= 0:
            return ""
        out, self._buf = self._buf[:cut], self._buf[cut:]
        return self._mask(out)

    def flush(self) -> str:
        """Everything still held, masked (the stream is over)."""
        out, self._buf = self._buf, ""
        return self._mask(out)
