"""Server-sent events in OpenAI's streaming format."""

from __future__ import annotations

from typing import Any

import orjson

from router.errors import RouterError
from router.protocol.chat_response import Chunk

DONE = b"data: [DONE]\n\n"


def event(payload: bytes) -> bytes:
    """One ``data:`` event around an already-serialised JSON payload."""
    return b"data: " + payload + b"\n\n"


def chunk_event(chunk: Chunk, include_usage: bool) -> bytes | None:
    """The event for ``chunk``, or None when it must not reach the client.

    The gateway always asks the upstream for usage; a client that did not ask for it gets no
    usage chunk, and no ``usage`` field on content chunks either.
    """
    if chunk.usage is not None and not include_usage:
        if not chunk.data.get("choices"):
            return None
        stripped = {k: v for k, v in chunk.data.items() if k != "usage"}
        return event(orjson.dumps(stripped))
    if chunk.raw is not None:
        return event(chunk.raw)
    return event(orjson.dumps(chunk.data))


def usage_event_with_cost(chunk: Chunk, cost_usd: float) -> bytes:
    """The usage chunk with the request's cost added as ``usage.cost_usd``."""
    data: dict[str, Any] = dict(chunk.data)
    usage = dict(data.get("usage") or {})
    usage["cost_usd"] = cost_usd
    data["usage"] = usage
    return event(orjson.dumps(data))


def error_event(err: RouterError) -> bytes:
    """An error event in OpenAI's error shape; the stream then ends with ``[DONE]``."""
    return event(orjson.dumps(err.body()))
