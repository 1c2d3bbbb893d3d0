"""Bill a stream whose client went away: keep reading the upstream until its usage chunk.

:class:`UpstreamReader` reads the upstream stream in a task of its own and hands chunks to the
relay through a small queue. When the client disconnects, the relay is cancelled but the reader
is not: :meth:`UpstreamReader.detach` lets it finish (bounded by a timeout) so the request is
billed from the upstream's own usage. If the usage never comes, the tokens are estimated (the
content chunks read, about one token each) and the record is flagged ``estimated``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from router.protocol.chat_response import Chunk, Usage

QUEUE_CHUNKS = 64


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None = None


class UpstreamReader:
    """An async iterator of chunks that survives the cancellation of its consumer."""

    def __init__(self, source: AsyncIterator[Chunk]) -> None:
        self._source = source
        self._queue: asyncio.Queue[Chunk | _End] = asyncio.Queue(QUEUE_CHUNKS)
        self.usage: Usage | None = None
        self.content_chunks = 0
        """Chunks with choices read from the upstream (relayed or not)."""
        self.detached = False
        self._task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        end = _End()
        try:
            async for chunk in self._source:
                if chunk.usage is not None:
                    self.usage = chunk.usage
                elif chunk.data.get("choices"):
                    self.content_chunks += 1
                if not self.detached:
                    await self._queue.put(chunk)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # handed to the consumer, which reports it
            end = _End(exc)
        finally:
            aclose = getattr(self._source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        if not self.detached:
            await self._queue.put(end)

    def __aiter__(self) -> UpstreamReader:
        return self

    async def __anext__(self) -> Chunk:
        item = await self._queue.get()
        if isinstance(item, _End):
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    async def detach(self, timeout_s: float) -> Usage | None:
        """Stop handing chunks out, let the upstream finish (at most ``timeout_s`` seconds),
        and return its usage (None when it never came)."""
        self.detached = True
        while not self._queue.empty():
            self._queue.get_nowait()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except (TimeoutError, Exception):
            await self.aclose()
        return self.usage

    async def aclose(self) -> None:
        """Stop reading and close the upstream stream."""
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


def estimated_usage(prompt_tokens: int, reader: UpstreamReader | None, relayed: int) -> Usage:
    """Usage when the upstream never reported it: one token per content chunk."""
    completion = reader.content_chunks if reader is not None else relayed
    return Usage(prompt_tokens, completion, estimated=True)
