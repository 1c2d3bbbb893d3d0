"""Output checks: secrets and PII in a hosted model's answer are masked before the client sees
them (``guard.output: secrets | pii``).

A mask reads ``[MASKED_EMAIL]``, ``[MASKED_SECRET]``...: unlike a redaction placeholder it has no
number and is never restored. For streams, :class:`MaskFilter` holds back a short tail (and any
token still growing at the end of the text, and an open private-key block) so that a value split
across chunks is still seen whole.
"""

from __future__ import annotations

from collections.abc import Iterable

from router.guard.pii import SECRET_KINDS, Finding, find_pii
from router.guard.redact import TAGS
from router.policy.sections.guard import ALL_KINDS, OutputMask, PiiKind

HOLD_CHARS = 64
"""Characters always held back at the end of a streamed text."""
MIN_RELEASE = 32
"""Characters released at once, at least (fewer scans of the held text)."""
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
    return (_masked(text, found), len(found)) if found else (text, 0)


def _masked(text: str, found: list[Finding]) -> str:
    out: list[str] = []
    pos = 0
    for f in found:
        out.append(text[pos : f.start])
        out.append(f"[MASKED_{TAGS[f.kind]}]")
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


class MaskFilter:
    """Masks streamed text; releases it once no value can still straddle the release point."""

    def __init__(self, kinds: tuple[PiiKind, ...]) -> None:
        self._kinds = kinds
        self._buf = ""
        self._scan_at = HOLD_CHARS + MIN_RELEASE
        """Buffer length at which the next scan happens (grows while nothing can be released)."""
        self.masked = 0
        """Values masked so far."""

    def feed(self, text: str) -> str:
        """The masked text that can be released now.

        Text is released in batches of at least :data:`MIN_RELEASE` characters, which bounds
        the number of scans per answer whatever the chunk size.
        """
        self._buf += text
        buf = self._buf
        if len(buf) < self._scan_at:
            return ""
        cut = len(buf) - HOLD_CHARS
        while cut > 0 and not buf[cut - 1].isspace():  # never split a token
            cut -= 1
        opened = buf.rfind(_KEY_BEGIN, 0, cut)
        if opened >= 0 and "-----END " not in buf[opened:]:
            cut = opened
        found = find_pii(buf, self._kinds)
        for f in reversed(found):  # a value across the cut is held back whole
            if f.start < cut < f.end:
                cut = f.start
        if cut == 0 and len(buf) > MAX_HOLD_CHARS:
            cut = len(buf) - HOLD_CHARS
            found = find_pii(buf[:cut], self._kinds)
        if cut <= 0:  # one long token or value: look again once it has grown by half
            self._scan_at = len(buf) + max(MIN_RELEASE, len(buf) // 2)
            return ""
        self._buf = buf[cut:]
        self._scan_at = len(self._buf) + MIN_RELEASE
        return self._apply(buf[:cut], [f for f in found if f.end <= cut])

    def _apply(self, text: str, found: list[Finding]) -> str:
        self.masked += len(found)
        return _masked(text, found)

    def flush(self) -> str:
        """Everything still held, masked (the stream is over)."""
        out, self._buf = self._buf, ""
        return self._apply(out, find_pii(out, self._kinds)) if out else ""
