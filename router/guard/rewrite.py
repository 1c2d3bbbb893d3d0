"""Rewriting a hosted answer: mask (output checks), then restore placeholders (redaction).

Masking runs first, on the text exactly as the hosted model wrote it, so that PII the model
produced on its own is hidden while the client's own values, which come back as placeholders,
are restored afterwards. Tool-call arguments are masked too, but restored only when the policy
says ``restore_tool_arguments`` (a tool the client runs would otherwise receive the real value
of something the hosted model never saw).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from router.guard.output import MaskFilter, mask_text
from router.guard.redact import Placeholders, RestoreFilter
from router.policy.sections.guard import PiiKind
from router.protocol.chat_response import Chunk


class TextFilter(Protocol):
    """A stateful filter over a text that arrives in pieces."""

    def feed(self, text: str) -> str:
        """The filtered text that can be released now."""
        ...

    def flush(self) -> str:
        """Everything still held, filtered."""
        ...


class Chain:
    """Filters applied one after the other."""

    def __init__(self, filters: list[TextFilter]) -> None:
        self._filters = filters

    def feed(self, text: str) -> str:
        """Run ``text`` through every filter."""
        for f in self._filters:
            text = f.feed(text)
        return text

    def flush(self) -> str:
        """Flush each filter into the next."""
        carry = ""
        for f in self._filters:
            carry = f.feed(carry) + f.flush()
        return carry


@dataclass(frozen=True, slots=True)
class AnswerRules:
    """How one hosted call's answer is rewritten."""

    mask_kinds: tuple[PiiKind, ...]
    table: Placeholders | None
    """The redaction table to restore from (None: nothing to restore)."""
    restore_tools: bool

    @property
    def active(self) -> bool:
        """Whether anything can change."""
        return bool(self.mask_kinds) or (self.table is not None and bool(self.table.by_placeholder))

    def text(self, text: str, tool: bool = False) -> str:
        """A whole text rewritten."""
        text, _ = mask_text(text, self.mask_kinds)
        if self.table is not None and (self.restore_tools or not tool):
            text = self.table.restore(text)
        return text

    def filter(self, tool: bool = False) -> TextFilter:
        """A fresh streaming filter for one text channel."""
        parts: list[TextFilter] = []
        if self.mask_kinds:
            parts.append(MaskFilter(self.mask_kinds))
        if self.table is not None and (self.restore_tools or not tool):
            parts.append(RestoreFilter(self.table))
        return Chain(parts)

    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """A ``chat.completion`` body with its messages' content and tool calls rewritten."""
        choices = body.get("choices")
        if not isinstance(choices, list):
            return body
        new_choices = []
        for choice in choices:
            msg = choice.get("message") if isinstance(choice, dict) else None
            if not isinstance(msg, dict):
                new_choices.append(choice)
                continue
            msg = dict(msg)
            if isinstance(msg.get("content"), str):
                msg["content"] = self.text(msg["content"])
            if isinstance(msg.get("tool_calls"), list):
                msg["tool_calls"] = [self._tool_call(tc) for tc in msg["tool_calls"]]
            new_choices.append({**choice, "message": msg})
        return {**body, "choices": new_choices}

    def _tool_call(self, call: Any) -> Any:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("arguments"), str):
            return call
        return {**call, "function": {**fn, "arguments": self.text(fn["arguments"], tool=True)}}


@dataclass(slots=True)
class StreamRewriter:
    """Rewrites ``chat.completion.chunk`` deltas, holding text across chunk boundaries.

    Held text is released with the choice's ``finish_reason`` chunk, or by :meth:`tail` when
    the stream ends without one.
    """

    rules: AnswerRules
    _channels: dict[tuple[int, int], TextFilter] = field(default_factory=dict)
    """Filters by (choice index, -1 for content or the tool call's index)."""
    _last: dict[str, Any] = field(default_factory=dict)

    def _feed(self, key: tuple[int, int], text: str) -> str:
        f = self._channels.get(key)
        if f is None:
            f = self._channels[key] = self.rules.filter(tool=key[1] >= 0)
        return f.feed(text)

    def chunk(self, chunk: Chunk) -> Chunk:
        """``chunk`` with its deltas rewritten (the same object when nothing changed)."""
        choices = chunk.data.get("choices")
        if not choices or not isinstance(choices, list):
            return chunk
        self._last = {
            k: chunk.data[k] for k in ("id", "object", "created", "model") if k in chunk.data
        }
        changed = False
        new_choices = []
        for choice in choices:
            if not isinstance(choice, dict) or not isinstance(choice.get("delta"), dict):
                new_choices.append(choice)
                continue
            idx = int(choice.get("index") or 0)
            delta = dict(choice["delta"])
            if isinstance(delta.get("content"), str):
                delta["content"] = self._feed((idx, -1), delta["content"])
            if isinstance(delta.get("tool_calls"), list):
                delta["tool_calls"] = [self._tool_delta(idx, tc) for tc in delta["tool_calls"]]
            if choice.get("finish_reason") is not None:
                self._release(idx, delta)
            if delta != choice["delta"]:
                changed = True
            new_choices.append({**choice, "delta": delta})
        if not changed:
            return chunk
        return Chunk(data={**chunk.data, "choices": new_choices}, usage=chunk.usage)

    def _tool_delta(self, idx: int, tc: Any) -> Any:
        fn = tc.get("function") if isinstance(tc, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("arguments"), str):
            return tc
        key = (idx, int(tc.get("index") or 0))
        return {**tc, "function": {**fn, "arguments": self._feed(key, fn["arguments"])}}

    def _release(self, idx: int, delta: dict[str, Any]) -> None:
        """Append everything held for choice ``idx`` to ``delta``."""
        for key in sorted(k for k in self._channels if k[0] == idx):
            rest = self._channels.pop(key).flush()
            if not rest:
                continue
            if key[1] < 0:
                delta["content"] = (delta.get("content") or "") + rest
                continue
            calls = list(delta.get("tool_calls") or [])
            for i, tc in enumerate(calls):
                if isinstance(tc, dict) and int(tc.get("index") or 0) == key[1]:
                    fn = dict(tc.get("function") or {})
                    fn["arguments"] = (fn.get("arguments") or "") + rest
                    calls[i] = {**tc, "function": fn}
                    break
            else:
                calls.append({"index": key[1], "function": {"arguments": rest}})
            delta["tool_calls"] = calls

    def tail(self) -> Chunk | None:
        """A last chunk with whatever is still held, or None."""
        if not self._channels:
            return None
        choices = []
        for idx in sorted({k[0] for k in self._channels}):
            delta: dict[str, Any] = {}
            self._release(idx, delta)
            if delta:
                choices.append({"index": idx, "delta": delta, "finish_reason": None})
        if not choices:
            return None
        return Chunk(data={**self._last, "choices": choices})
