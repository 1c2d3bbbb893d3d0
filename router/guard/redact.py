"""Redaction: PII replaced by stable placeholders before a hosted call, restored afterwards.

Within one request the same value always gets the same placeholder (``[EMAIL_1]`` in the
system prompt and in the third user turn stand for the same address), so the hosted model can
still reason about "the same person". Placeholders are numbered per kind in order of first
appearance; a number that the client's own text already contains is skipped, so restoring can
never rewrite text the client wrote. Only placeholders this request issued are restored: a
hosted model that invents ``[EMAIL_7]`` gets it shown as is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from router.guard.pii import Finding, find_pii
from router.policy.sections.guard import PiiKind
from router.protocol.chat_request import ChatRequest

TAGS: Mapping[PiiKind, str] = MappingProxyType(
    {
        "secret": "SECRET",
        "credit_card": "CARD",
        "iban": "IBAN",
        "national_id": "NATIONAL_ID",
        "email": "EMAIL",
        "phone": "PHONE",
        "ip_address": "IP",
    }
)
"""The placeholder tag of each kind."""
PLACEHOLDER = re.compile(r"\[(SECRET|CARD|IBAN|NATIONAL_ID|EMAIL|PHONE|IP)_(\d{1,4})\]")
_PARTIAL = re.compile(r"\[[A-Z_]{0,12}\d{0,4}")
MAX_PLACEHOLDER = len("[NATIONAL_ID_9999]")


@dataclass(slots=True)
class Placeholders:
    """The value <-> placeholder table of one request."""

    taken: frozenset[str] = frozenset()
    """Placeholder-shaped strings already in the client's text (never issued)."""
    by_value: dict[tuple[PiiKind, str], str] = field(default_factory=dict)
    by_placeholder: dict[str, str] = field(default_factory=dict)
    _next: dict[PiiKind, int] = field(default_factory=dict)

    def placeholder(self, finding: Finding) -> str:
        """The placeholder for ``finding``'s value (issued on first sight)."""
        key = (finding.kind, finding.value)
        got = self.by_value.get(key)
        if got is not None:
            return got
        n = self._next.get(finding.kind, 0)
        while True:
            n += 1
            candidate = f"[{TAGS[finding.kind]}_{n}]"
            if candidate not in self.taken:
                break
        self._next[finding.kind] = n
        self.by_value[key] = candidate
        self.by_placeholder[candidate] = finding.value
        return candidate

    def redact(self, text: str, findings: Iterable[Finding]) -> str:
        """``text`` with each finding (non-overlapping, in order) replaced by its placeholder."""
        out: list[str] = []
        pos = 0
        for f in findings:
            out.append(text[pos : f.start])
            out.append(self.placeholder(f))
            pos = f.end
        out.append(text[pos:])
        return "".join(out)

    def restore(self, text: str) -> str:
        """``text`` with every placeholder this request issued replaced by its value."""
        if "[" not in text or not self.by_placeholder:
            return text
        table = self.by_placeholder
        return PLACEHOLDER.sub(lambda m: table.get(m.group(), m.group()), text)


def message_texts(raw: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(location, text)`` of every text in a raw message: content, parts, tool-call arguments."""
    content = raw.get("content")
    if isinstance(content, str):
        yield "content", content
    elif isinstance(content, list):
        for i, part in enumerate(content):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield f"content[{i}].text", part["text"]
    for i, call in enumerate(raw.get("tool_calls") or ()):
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            yield f"tool_calls[{i}].function.arguments", fn["arguments"]


def map_message(raw: Mapping[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    """A copy of a raw message with ``fn`` applied to each of its texts."""
    out = dict(raw)
    content = raw.get("content")
    if isinstance(content, str):
        out["content"] = fn(content)
    elif isinstance(content, list):
        out["content"] = [
            {**p, "text": fn(p["text"])}
            if isinstance(p, dict) and isinstance(p.get("text"), str)
            else p
            for p in content
        ]
    calls = raw.get("tool_calls")
    if isinstance(calls, list):
        new_calls = []
        for call in calls:
            fn_def = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn_def, dict) and isinstance(fn_def.get("arguments"), str):
                call = {**call, "function": {**fn_def, "arguments": fn(fn_def["arguments"])}}
            new_calls.append(call)
        out["tool_calls"] = new_calls
    return out


@dataclass(frozen=True, slots=True)
class Redacted:
    """A request with its PII replaced, and the table to restore the answer with."""

    request: ChatRequest
    placeholders: Placeholders
    count: int
    """How many values were replaced."""


def redact_request(req: ChatRequest, kinds: Iterable[PiiKind], roles: Iterable[str]) -> Redacted:
    """A copy of ``req`` whose scanned messages (and ``user`` field) carry placeholders.

    The copy's ``raw_body()`` (what an OpenAI-compatible backend forwards) is redacted as
    well as its parsed messages; every other field is kept as the client sent it.
    """
    kinds, roles = tuple(kinds), frozenset(roles)
    raw = req.raw_body()
    messages = raw.get("messages") or []
    everything = "\n".join(t for m in messages if isinstance(m, dict) for _, t in message_texts(m))
    table = Placeholders(taken=frozenset(m.group() for m in PLACEHOLDER.finditer(everything)))
    count = 0

    def scrub(text: str) -> str:
        nonlocal count
        found = find_pii(text, kinds)
        count += len(found)
        return table.redact(text, found) if found else text

    new_messages = [
        map_message(m, scrub) if isinstance(m, dict) and m.get("role") in roles else m
        for m in messages
    ]
    body = {**raw, "messages": new_messages}
    if isinstance(raw.get("user"), str):
        body["user"] = scrub(raw["user"])
    redacted = ChatRequest.model_validate(body)
    redacted._raw = body
    return Redacted(redacted, table, count)


class RestoreFilter:
    """Restores placeholders in streamed text; holds back a tail that may be half of one."""

    def __init__(self, table: Placeholders) -> None:
        self._table = table
        self._held = ""

    def feed(self, text: str) -> str:
        """The restored text that can be released now."""
        text = self._held + text
        self._held = ""
        cut = text.rfind("[")
        if cut >= 0 and len(text) - cut < MAX_PLACEHOLDER and _PARTIAL.fullmatch(text, cut):
            self._held = text[cut:]
            text = text[:cut]
        return self._table.restore(text)

    def flush(self) -> str:
        """Whatever is still held, restored (the stream is over)."""
        held, self._held = self._held, ""
        return self._table.restore(held)
