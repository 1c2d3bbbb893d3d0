"""Replay of cached completions and assembly of streams (pure)."""

from __future__ import annotations

from typing import Any

import orjson

from router.cache.entry import CacheEntry, CacheHit
from router.cache.replay import StreamAssembler, replay_body, replay_chunks, replay_sse
from router.protocol.chat_response import Chunk, Usage


def entry(content: str = "Paris is the capital.", **message: Any) -> CacheEntry:
    body = {
        "id": "chatcmpl-orig",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-x",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14},
    }
    return CacheEntry(body, "hosted", Usage(9, 5), 100.0, "q")


def test_entry_round_trip() -> None:
    e = entry()
    assert CacheEntry.loads(e.dumps()) == e


def test_replay_body_is_a_fresh_copy_with_usage() -> None:
    e = entry()
    body = replay_body(CacheHit("exact", e, 1.0))
    assert body["id"] != "chatcmpl-orig" and body["usage"]["total_tokens"] == 14
    body["choices"][0]["message"]["content"] = "changed"
    assert e.body["choices"][0]["message"]["content"] == "Paris is the capital."


def test_replay_stream_round_trips_through_assembler() -> None:
    long = " ".join(["word"] * 300)
    hit = CacheHit("semantic", entry(long), 1.0, 0.95)
    chunks = list(replay_chunks(hit, include_usage=True))
    assert len(chunks) > 4
    assert chunks[-1].data["choices"] == [] and chunks[-1].usage == Usage(9, 5)
    assert all("usage" in c.data for c in chunks)
    asm = StreamAssembler()
    for c in chunks:
        asm.add(c)
    done = asm.completion("hosted")
    assert done is not None
    assert done.body["choices"][0]["message"]["content"] == long
    assert done.usage == Usage(9, 5)
    events = list(replay_sse(hit, include_usage=False))
    assert events[-1] == b"data: [DONE]\n\n"
    assert all(b'"usage"' not in ev for ev in events)
    first = orjson.loads(events[0].removeprefix(b"data: "))
    assert first["object"] == "chat.completion.chunk"


def test_tool_calls_replay_and_merge() -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]
    hit = CacheHit("exact", entry("", tool_calls=calls), 0.0)
    asm = StreamAssembler()
    for c in replay_chunks(hit, include_usage=False):
        asm.add(c)
    done = asm.completion("m")
    assert done is not None
    assert done.body["choices"][0]["message"]["tool_calls"] == calls


def _chunk(delta: dict[str, Any], finish: str | None = None) -> Chunk:
    return Chunk({"id": "x", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def test_assembler_merges_fragmented_tool_calls() -> None:
    asm = StreamAssembler()
    asm.add(_chunk({"role": "assistant"}))
    first = {"index": 0, "id": "c", "function": {"name": "get", "arguments": '{"ci'}}
    asm.add(_chunk({"tool_calls": [first]}))
    asm.add(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Oslo"}'}}]}))
    asm.add(_chunk({}, "tool_calls"))
    done = asm.completion("m")
    assert done is not None
    call = done.body["choices"][0]["message"]["tool_calls"][0]
    assert call["function"] == {"name": "get", "arguments": '{"city":"Oslo"}'}


def test_cut_or_failed_stream_is_not_a_completion() -> None:
    asm = StreamAssembler()
    asm.add(_chunk({"content": "Par"}))
    assert asm.completion("m") is None
    asm.add(Chunk({"error": {"message": "upstream died"}}))
    asm.add(_chunk({}, "stop"))
    assert asm.completion("m") is None
    assert StreamAssembler().completion("m") is None
