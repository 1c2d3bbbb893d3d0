"""Cacheability rules and the per-request cache controls.

A request may be *read* from the cache and its response *written* to it only when it is safe:

* ``temperature`` is 0 (unset counts as OpenAI's default, 1) unless the policy opts in;
* no tool-call turns (tool results in the request, tool calls in the response) unless the
  policy opts in;
* the response is complete and successful: every choice ended with ``stop`` or ``length``
  (``tool_calls`` when allowed); errors, 429s and cut-off streams never reach the cache because
  the pipeline only stores a :class:`~router.protocol.chat_response.Completion` it got whole.

Per request, a client can narrow (never widen) what the policy allows:

* ``Cache-Control: no-store`` — neither read nor write;
* ``Cache-Control: no-cache`` — do not read (revalidate), but store the fresh response;
* ``x-router-cache-mode: off | refresh | exact | default`` — the same two, plus ``exact`` to
  skip only the semantic lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from router.policy.sections.cache import CacheSettings
from router.protocol.chat_request import ChatRequest

HINT_HEADER = "x-router-cache-mode"
"""Request header with a per-request cache mode (``off``, ``refresh``, ``exact``, ``default``)."""
RESULT_HEADER = "x-router-cache"
"""Response header: ``miss``, ``hit-exact`` or ``hit-semantic``."""

COMPLETE_REASONS = frozenset({"stop", "length"})


@dataclass(frozen=True, slots=True)
class Directives:
    """What one request lets the cache do."""

    read_exact: bool = True
    read_semantic: bool = True
    write: bool = True

    @staticmethod
    def from_headers(headers: Mapping[str, str]) -> Directives:
        """Parse ``Cache-Control`` and :data:`HINT_HEADER` (header names in any case)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        parts = lowered.get("cache-control", "").split(",")
        cc = {p.strip().split("=", 1)[0].lower() for p in parts}
        mode = lowered.get(HINT_HEADER, "default").strip().lower()
        if "no-store" in cc or mode == "off":
            return Directives(False, False, False)
        if "no-cache" in cc or mode == "refresh":
            return Directives(False, False, True)
        if mode == "exact":
            return Directives(True, False, True)
        return Directives()


def request_uncacheable(
    req: ChatRequest, settings: CacheSettings, has_tool_turns: bool
) -> str | None:
    """Why ``req`` may not use the cache at all, or None when it may."""
    if not (settings.exact or settings.semantic):
        return "cache disabled"
    if not settings.cache_nonzero_temperature and req.temperature != 0:
        return "temperature is not 0"
    if has_tool_turns and not settings.cache_tool_calls:
        return "tool-call turn"
    return None


def response_uncacheable(body: Mapping[str, Any], settings: CacheSettings) -> str | None:
    """Why a completion body may not be stored, or None when it may."""
    if "error" in body:
        return "error body"
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return "no choices"
    allowed = COMPLETE_REASONS | ({"tool_calls"} if settings.cache_tool_calls else set())
    for choice in choices:
        if not isinstance(choice, dict):
            return "malformed choice"
        if choice.get("finish_reason") not in allowed:
            return f"finish_reason {choice.get('finish_reason')!r}"
        message = choice.get("message")
        if not isinstance(message, dict):
            return "choice without a message"
        if message.get("tool_calls") and not settings.cache_tool_calls:
            return "tool-call turn"
    return None
