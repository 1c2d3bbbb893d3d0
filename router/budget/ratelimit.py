"""Rate limits (requests and tokens per minute, per key and per team) and their headers.

The counting itself is part of the reserve script (:mod:`.scripts`): one Redis round trip checks
every limit and budget atomically. Windows are fixed UTC minutes; a request counts its
worst-case tokens up front and the settle script corrects the count to the actual tokens.
Headers follow OpenAI's names: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` for
the tightest scope, plus ``retry-after`` (seconds) on a 429.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LimitScope:
    """Per-minute limits of one scope (None: unlimited)."""

    scope: str
    label: str
    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True, slots=True)
class RateState:
    """Counts of one scope in the current minute, after this request."""

    limit: LimitScope
    requests: int
    tokens: int


def _fmt_s(seconds: float) -> str:
    return f"{max(seconds, 0.0):.3f}".rstrip("0").rstrip(".") + "s"


def rate_headers(states: Sequence[RateState], reset_s: float) -> dict[str, str]:
    """``x-ratelimit-*`` headers for the tightest request and token limits in ``states``."""
    h: dict[str, str] = {}
    req = [(s.limit.rpm - s.requests, s.limit.rpm) for s in states if s.limit.rpm]
    if req:
        remaining, limit = min(req)
        h["x-ratelimit-limit-requests"] = str(limit)
        h["x-ratelimit-remaining-requests"] = str(max(remaining, 0))
        h["x-ratelimit-reset-requests"] = _fmt_s(reset_s)
    tok = [(s.limit.tpm - s.tokens, s.limit.tpm) for s in states if s.limit.tpm]
    if tok:
        remaining, limit = min(tok)
        h["x-ratelimit-limit-tokens"] = str(limit)
        h["x-ratelimit-remaining-tokens"] = str(max(remaining, 0))
        h["x-ratelimit-reset-tokens"] = _fmt_s(reset_s)
    return h
