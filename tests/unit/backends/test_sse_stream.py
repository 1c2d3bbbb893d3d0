"""openai_compat's SSEStream and the relay's readers, over real HTTP on loopback.

The upstream is an aiohttp server whose handler writes scripted pieces and waits on a gate
between them, so which bytes a read can see is fixed by the test, not by timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import orjson
import pytest
from aiohttp import web

from router.backends.base import Target
from router.backends.openai_compat import OpenAICompatBackend, SSEStream
from router.errors import StreamInterrupted, UpstreamTimeout
from router.ledger.drain import DirectReader, UpstreamReader, reader_for
from router.policy.schema import ModelSpec, Timeouts
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk, Usage


def payload(content: str | None, usage: dict[str, int] | None = None) -> bytes:
    choices = [] if content is None else [{"index": 0, "delta": {"content": content}}]
    return orjson.dumps({"id": "c1", "choices": choices, "usage": usage})


def event(data: bytes, sep: bytes = b"\n\n") -> bytes:
    return b"data: " + data + sep


USAGE = {"prompt_tokens": 5, "completion_tokens": 2}
DONE = b"data: [DONE]\n\n"


@dataclass
class Script:
    """What the upstream writes: pieces, each after its gate (None: at once)."""

    pieces: list[tuple[asyncio.Event | None, bytes]] = field(default_factory=list)
    close_early: bool = False


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, Script]]:
    script = Script()

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for gate, piece in script.pieces:
            if gate is not None:
                await gate.wait()
            await resp.write(piece)
        if script.close_early and request.transport is not None:
            request.transport.close()
            return resp
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1", script
    finally:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def open_stream(session: aiohttp.ClientSession, url: str, total_s: float = 30.0) -> SSEStream:
    spec = ModelSpec(name="m", backend="openai_compat", endpoint=url)
    req = ChatRequest.model_validate(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    )
    target = Target(spec, Timeouts(connect_s=5, total_s=total_s))
    return OpenAICompatBackend(session).stream(req, target)


def contents(chunks: list[Chunk]) -> list[str | None]:
    return [c.data["choices"][0]["delta"]["content"] if c.data["choices"] else None for c in chunks]


async def test_a_batch_is_what_one_read_completed(
    upstream: tuple[str, Script], session: aiohttp.ClientSession
) -> None:
    url, script = upstream
    gate = asyncio.Event()
    second = event(payload("b"), b"\r\n\r\n") + event(payload(None, USAGE)) + DONE
    script.pieces = [
        (None, event(payload("a")) + event(payload("b"))[:9]),  # one event and a half
        (gate, event(payload("b"))[9:] + second),
    ]
    stream = open_stream(session, url)
    first = await stream.__anext__()
    assert contents([first]) == ["a"] and first.raw == payload("a") and first.usage is None
    gate.set()
    rest = await stream.batch()
    assert contents(rest) == ["b", "b", None]
    assert [c.raw for c in rest] == [payload("b"), payload("b"), payload(None, USAGE)]
    assert rest[-1].usage == Usage(5, 2) and rest[0].data == orjson.loads(payload("b"))
    assert await stream.batch() == [] and await stream.batch() == []


async def test_chunks_before_a_malformed_one_come_first(
    upstream: tuple[str, Script], session: aiohttp.ClientSession
) -> None:
    url, script = upstream
    script.pieces = [(None, event(payload("a")) + event(payload("b")) + b"data: {oops\n\n")]
    stream = open_stream(session, url)
    assert contents([await stream.__anext__()]) == ["a"]
    assert contents(await stream.batch()) == ["b"]
    with pytest.raises(StreamInterrupted, match="malformed"):
        await stream.batch()


async def test_an_error_event_and_an_early_end_raise(
    upstream: tuple[str, Script], session: aiohttp.ClientSession
) -> None:
    url, script = upstream
    error = orjson.dumps({"error": {"message": "overloaded"}})
    script.pieces = [(None, event(payload("a")) + event(error))]
    stream = open_stream(session, url)
    assert contents([await stream.__anext__()]) == ["a"]
    with pytest.raises(StreamInterrupted, match="overloaded"):
        await stream.batch()

    script.pieces = [(None, event(payload("a")))]  # the body ends without [DONE]
    stream = open_stream(session, url)
    assert contents([await stream.__anext__()]) == ["a"]
    with pytest.raises(StreamInterrupted, match="before \\[DONE\\]"):
        await stream.batch()


async def test_a_read_that_waits_too_long_times_out(
    upstream: tuple[str, Script], session: aiohttp.ClientSession
) -> None:
    url, script = upstream
    never = asyncio.Event()
    script.pieces = [(None, event(payload("a"))), (never, DONE)]
    stream = open_stream(session, url, total_s=0.05)
    assert contents([await stream.__anext__()]) == ["a"]
    with pytest.raises(UpstreamTimeout):
        await stream.batch()
    never.set()


async def test_reading_survives_a_cancelled_read_and_bills_from_usage(
    upstream: tuple[str, Script], session: aiohttp.ClientSession
) -> None:
    """The client goes away while the relay waits for a read: the read is cancelled, and
    another task reads the rest of the stream for its usage."""
    url, script = upstream
    gate = asyncio.Event()
    script.pieces = [
        (None, event(payload("a"))),
        (gate, event(payload("b")) + event(payload(None, USAGE)) + DONE),
    ]
    stream = open_stream(session, url)
    await stream.__anext__()
    reader = reader_for(stream)
    assert isinstance(reader, DirectReader)
    waiting = asyncio.get_running_loop().create_task(reader.batch())
    for _ in range(5):  # let it start and block on the read
        await asyncio.sleep(0)
    assert not waiting.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    gate.set()
    billing = asyncio.get_running_loop().create_task(reader.detach(30.0))
    assert await billing == Usage(5, 2)
    assert reader.content_chunks == 1  # "b" (the first chunk was taken before the reader)


async def test_other_streams_get_a_reading_task() -> None:
    async def chunks() -> AsyncIterator[Chunk]:
        yield Chunk({"choices": [{"index": 0, "delta": {"content": "x"}}]})
        yield Chunk({"choices": []}, usage=Usage(1, 1))

    reader = reader_for(chunks())
    assert isinstance(reader, UpstreamReader)
    got = await reader.batch()
    got += await reader.batch() if len(got) < 2 else []
    assert [c.usage for c in got] == [None, Usage(1, 1)]
    assert await reader.batch() == [] and reader.content_chunks == 1
    await reader.aclose()
