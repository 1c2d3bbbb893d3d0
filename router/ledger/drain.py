"""Bill a stream whose client went away: keep reading the upstream until its usage chunk.

:class:`UpstreamReader` reads the upstream stream in a task of its own and hands chunks to the
relay through a small buffer. When the client disconnects, the relay is cancelled but the reader
is not: :meth:`UpstreamReader.detach` lets it finish (bounded by a timeout) so the request is
billed from the upstream's own usage. If the usage never comes, the tokens are estimated (the
content chunks read, about one token each) and the record is flagged ``estimated``.

The buffer is a plain list and one future, not an ``asyncio.Queue``: the queue's put and get
cost more CPU per chunk than the rest of the hop (docs/performance.md, stream section), and
:meth:`UpstreamReader.batch` hands the relay every chunk read since it last asked, so that
chunks that arrived together reach the client in one send.

A backend stream that is a :class:`~router.backends.base.BatchedStream` (``openai_compat``'s)
needs no such task: its reads survive the relay's cancellation, so :class:`DirectReader` reads
it in the relay's own task, one task switch a read fewer, and :meth:`DirectReader.detach` goes
on reading it in the task that bills the request. :func:`reader_for` picks the reader.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from router.backends.base import BatchedStream
from router.protocol.chat_response import Chunk, Usage

QUEUE_CHUNKS = 64
"""Chunks read ahead of a slow client before the reader waits for it."""


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None = None


class UpstreamReader:
    """An async iterator of chunks that survives the cancellation of its consumer."""

    def __init__(self, source: AsyncIterator[Chunk]) -> None:
        self._source = source
        self._loop = asyncio.get_running_loop()
        self._items: list[Chunk] = []
        self._end: _End | None = None
        self._waiter: asyncio.Future[None] | None = None
        """The consumer waits on it for a chunk or the end."""
        self._space: asyncio.Future[None] | None = None
        """The reader waits on it while :data:`QUEUE_CHUNKS` chunks are untaken."""
        self.usage: Usage | None = None
        self.content_chunks = 0
        """Chunks with choices read from the upstream (relayed or not)."""
        self.detached = False
        self._task = self._loop.create_task(self._pump())

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _release(self) -> None:
        space = self._space
        if space is not None:
            self._space = None
            if not space.done():
                space.set_result(None)

    async def _pump(self) -> None:
        end = _End()
        try:
            async for chunk in self._source:
                if chunk.usage is not None:
                    self.usage = chunk.usage
                elif chunk.data.get("choices"):
                    self.content_chunks += 1
                if self.detached:
                    continue
                self._items.append(chunk)
                self._wake()
                if len(self._items) >= QUEUE_CHUNKS:  # a slow client: stop reading ahead
                    self._space = self._loop.create_future()
                    await self._space
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # handed to the consumer, which reports it
            end = _End(exc)
        finally:
            aclose = getattr(self._source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        self._end = end
        self._wake()

    async def _ready(self) -> bool:
        """Wait until a chunk is untaken (True) or the upstream ended (False); raise its error."""
        while not self._items:
            end = self._end
            if end is not None:
                if end.error is not None:
                    raise end.error
                return False
            waiter = self._loop.create_future()
            self._waiter = waiter
            await waiter
        return True

    async def batch(self) -> list[Chunk]:
        """Every chunk read and not taken yet, in order, waiting for at least one.

        Returns ``[]`` once the upstream ended well; raises the upstream's error once the
        chunks read before it were taken.
        """
        if not await self._ready():
            return []
        out, self._items = self._items, []
        self._release()
        return out

    def __aiter__(self) -> UpstreamReader:
        return self

    async def __anext__(self) -> Chunk:
        if not await self._ready():
            raise StopAsyncIteration
        chunk = self._items.pop(0)
        self._release()
        return chunk

    async def detach(self, timeout_s: float) -> Usage | None:
        """Stop handing chunks out, let the upstream finish (at most ``timeout_s`` seconds),
        and return its usage (None when it never came)."""
        self.detached = True
        self._items.clear()
        self._release()
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


class DirectReader:
    """A :class:`~router.backends.base.BatchedStream` read in the consumer's own task."""

    def __init__(self, source: BatchedStream) -> None:
        self._source = source
        self.usage: Usage | None = None
        self.content_chunks = 0
        """Chunks with choices read from the upstream (relayed or not)."""
        self.detached = False

    async def batch(self) -> list[Chunk]:
        """The chunks of the next read, in order; ``[]`` once the upstream ended well; raises
        the upstream's error once the chunks read before it were handed out."""
        chunks = await self._source.batch()
        for chunk in chunks:
            if chunk.usage is not None:
                self.usage = chunk.usage
            elif chunk.data.get("choices"):
                self.content_chunks += 1
        return chunks

    async def detach(self, timeout_s: float) -> Usage | None:
        """Read the rest of the upstream (at most ``timeout_s`` seconds) without handing it
        out, and return its usage (None when it never came)."""
        self.detached = True
        try:
            async with asyncio.timeout(timeout_s):
                while await self.batch():
                    pass
        except Exception:  # a failure or the timeout: bill what is known
            pass
        finally:
            await self.aclose()
        return self.usage

    async def aclose(self) -> None:
        """Stop reading and close the upstream stream."""
        await self._source.aclose()


class ChunkReader(Protocol):
    """What the relay reads a stream through: :class:`UpstreamReader` or :class:`DirectReader`."""

    usage: Usage | None
    content_chunks: int

    async def batch(self) -> list[Chunk]:
        """The chunks read and not taken yet (at least one); ``[]`` at the end."""
        ...

    async def detach(self, timeout_s: float) -> Usage | None:
        """Read the rest without handing it out; the upstream's usage."""
        ...

    async def aclose(self) -> None:
        """Stop reading and close the upstream stream."""
        ...


def reader_for(source: AsyncIterator[Chunk]) -> ChunkReader:
    """Read ``source`` directly when its reads survive cancellation, else in a task of its own."""
    if isinstance(source, BatchedStream):
        return DirectReader(source)
    return UpstreamReader(source)


def estimated_usage(prompt_tokens: int, reader: ChunkReader | None, relayed: int) -> Usage:
    """Usage when the upstream never reported it: one token per content chunk."""
    completion = reader.content_chunks if reader is not None else relayed
    return Usage(prompt_tokens, completion, estimated=True)
