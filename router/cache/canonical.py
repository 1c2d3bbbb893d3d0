"""Canonical forms of a request: the exact-cache digest and the semantic scope.

The **exact digest** covers everything that changes the answer: the tenant, the model or route
the client asked for, every message, the sampling parameters, tools, ``tool_choice``,
``response_format`` and any provider-specific extra field. It ignores what only changes the
transport or the bookkeeping (``stream``, ``stream_options``, ``user``, ``metadata``, ``store``,
``service_tier``), so a streamed and a non-streamed request share an entry.

The **semantic scope** is the same digest *without the last user message*: two requests are
compared by meaning only when the tenant, the route, the parameters, the system prompt and the
earlier turns are identical, and only their last user message differs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import orjson

from router.protocol.chat_request import ChatRequest

TRANSPORT_FIELDS = frozenset(
    {"stream", "stream_options", "user", "metadata", "store", "service_tier", "messages"}
)
"""Request fields left out of the digests (``messages`` is canonicalised separately)."""


@dataclass(frozen=True, slots=True)
class CanonicalRequest:
    """The digests and texts the cache needs from one request."""

    digest: str
    """Exact-cache digest (hex)."""
    scope: str
    """Semantic scope digest (hex)."""
    prompt: str
    """The last user message's text (what the semantic cache compares)."""
    has_tool_turns: bool
    """Whether the messages carry tool calls or tool results."""


def _message(m: Any) -> dict[str, Any]:
    """A message as a plain dict with only its set fields, text parts kept in order."""
    out: dict[str, Any] = m.model_dump(mode="json", exclude_none=True)
    return out


def _hash(obj: Any) -> str:
    try:
        data = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        # What orjson cannot write (nesting past 254 levels, an integer past 64 bits: the API
        # layer refuses those, this is the last line) still gets a stable digest, never a 500.
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=repr)
        data = text.encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def canonicalize(
    req: ChatRequest, tenant: str, namespace: str = "v1", variant: str = ""
) -> CanonicalRequest:
    """Compute the exact digest, the semantic scope and the prompt of ``req`` for ``tenant``.

    ``max_tokens`` and ``max_completion_tokens`` are folded into one value; unset fields are
    left out, so a field sent with its default value (``"n": 1``) still differs from an absent
    one only when the client sends it (deliberately conservative). ``variant`` is anything
    else that changes the answer (the model a rule or an override pinned the request to).
    """
    params = req.model_dump(mode="json", exclude_none=True, exclude=set(TRANSPORT_FIELDS))
    limit = params.pop("max_completion_tokens", None) or params.pop("max_tokens", None)
    params.pop("max_tokens", None)
    if limit is not None:
        params["max_output_tokens"] = limit
    messages = [_message(m) for m in req.messages]
    last_user = max((i for i, m in enumerate(req.messages) if m.role == "user"), default=-1)
    prompt = req.messages[last_user].text() if last_user >= 0 else ""
    has_tool_turns = any(m.role in ("tool", "function") or m.tool_calls for m in req.messages)
    head = {"ns": namespace, "tenant": tenant, "variant": variant, "params": params}
    digest = _hash({**head, "messages": messages})
    context = [m for i, m in enumerate(messages) if i != last_user]
    scope = _hash({**head, "context": context, "at": last_user})
    return CanonicalRequest(digest, scope, prompt, has_tool_turns)
