"""Server-sent events in OpenAI's streaming format."""

from __future__ import annotations

from typing import Any

import orjson

from router.errors import RouterError
from router.protocol.chat_response import Chunk

DONE = b"data: [DONE]\n\n"
DATA = b"data: "
"""What an event's payload follows."""
END = b"\n\n"
"""What ends an event."""


def event(payload: bytes) -> bytes:
    """One ``data:`` event around an already-serialised JSON payload."""
    return DATA + payload + END


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


class DataSplitter:
    """The ``data:`` payloads of an SSE byte stream that arrives in pieces of any size.

    :meth:`feed` takes each piece as read and returns the payloads it completed, in order: one
    per ``data:`` line of every event ended by a blank line (CRLF line ends are read as LF; the
    payload is stripped of surrounding whitespace; other fields are skipped). ``data: [DONE]``
    ends the stream: :attr:`done` turns True and nothing after it is returned.

    One call per read rather than per event: the upstream relay splits every event of a busy
    stream here, and a read often holds several (docs/performance.md, stream section).
    """

    __slots__ = ("_buf", "done")

    def __init__(self) -> None:
        self._buf = b""
        self.done = False
        """True once ``data: [DONE]`` was read."""

    def feed(self, piece: bytes) -> list[bytes]:
        """The payloads of the events ``piece`` completed (``[DONE]`` excluded)."""
        out: list[bytes] = []
        if self.done:
            return out
        buf = self._buf + piece if self._buf else piece
        if b"\r\n" in buf:  # checked on the joined buffer: a CR and its LF may be split
            buf = buf.replace(b"\r\n", b"\n")
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            ev = buf[start:end]
            start = end + 2
            lines = (ev,) if b"\n" not in ev else ev.split(b"\n")
            for line in lines:
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    self.done = True
                    self._buf = b""
                    return out
                out.append(payload)
        self._buf = buf[start:] if start else buf
        return out
