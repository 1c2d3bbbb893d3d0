"""Chat completions and chat streams rendered as Anthropic Messages and Messages events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

from router.protocol.messages_render import anthropic_events, message_from_completion

EVENT = TypeAdapter[Any](RawMessageStreamEvent)
CACHED_USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 7,
    "prompt_tokens_details": {"cached_tokens": 800},
    "cache_creation_input_tokens": 150,
}


def test_completion_becomes_a_message_with_anthropic_usage() -> None:
    body = {
        "choices": [
            {
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Let me check.",
                    "thinking_blocks": [
                        {"type": "thinking", "thinking": "hmm", "signature": "s1"},
                        {"type": "redacted_thinking", "data": "xx"},
                    ],
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "w", "arguments": '{"city": "Oslo"}'},
                        }
                    ],
                },
            }
        ],
        "usage": CACHED_USAGE,
    }
    msg = message_from_completion(body, "claude-x", "msg_1")
    assert msg["content"] == [
        {"type": "thinking", "thinking": "hmm", "signature": "s1"},
        {"type": "redacted_thinking", "data": "xx"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_1", "name": "w", "input": {"city": "Oslo"}},
    ]
    assert msg["stop_reason"] == "tool_use"
    # Anthropic's input_tokens exclude cache reads and writes
    assert msg["usage"] == {
        "input_tokens": 50,
        "output_tokens": 7,
        "cache_creation_input_tokens": 150,
        "cache_read_input_tokens": 800,
    }


def test_length_maps_to_max_tokens() -> None:
    body = {"choices": [{"finish_reason": "length", "message": {"content": "a"}}]}
    assert message_from_completion(body, "m", "id")["stop_reason"] == "max_tokens"


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


async def chat_sse(chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for c in chunks:
        yield b"data: " + orjson.dumps(c) + b"\n\n"
    yield b"data: [DONE]\n\n"


def run(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    async def collect() -> list[bytes]:
        return [ev async for ev in anthropic_events(chat_sse(chunks), "claude-x", "msg_1")]

    events = []
    for raw in asyncio.run(collect()):
        name, data = raw.decode().strip().split("\n")
        parsed = orjson.loads(data.removeprefix("data: "))
        assert name == "event: " + parsed["type"]
        events.append(parsed)
    return events


def final_message(events: list[dict[str, Any]]) -> Any:
    """What the SDK's ``MessageStream.get_final_message()`` builds from the events."""
    snapshot = None
    bufs: dict[int, bytes] = {}
    for ev in events:
        snapshot = accumulate_event(
            event=EVENT.validate_python(ev), current_snapshot=snapshot, json_bufs=bufs
        )
    return snapshot


def test_stream_of_thinking_text_and_tool_call_with_usage_last() -> None:
    events = run(
        [
            chunk({"role": "assistant", "reasoning_content": "think"}),
            chunk({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "sg"}]}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "c1", "function": {"name": "w", "arguments": ""}}
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Oslo"}'}}]}),
            chunk({}, "tool_calls"),
            {"choices": [], "usage": {**CACHED_USAGE, "cost_usd": 0.01}},
        ]
    )
    types = [e["type"] for e in events]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    assert types.count("content_block_start") == types.count("content_block_stop") == 3
    delta = events[-2]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"] == {
        "input_tokens": 50,
        "output_tokens": 7,
        "cache_creation_input_tokens": 150,
        "cache_read_input_tokens": 800,
    }
    msg = final_message(events)
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"]
    assert msg.content[0].thinking == "think" and msg.content[0].signature == "sg"
    assert msg.content[1].text == "Hello"
    assert msg.content[2].input == {"city": "Oslo"}
    assert msg.usage.input_tokens == 50 and msg.usage.output_tokens == 7
    assert msg.usage.cache_read_input_tokens == 800
    assert msg.usage.cache_creation_input_tokens == 150


def test_two_tool_calls_are_two_blocks() -> None:
    events = run(
        [
            chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
            chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g"}}]}),
            chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"x":1}'}}]}),
            chunk({}, "tool_calls"),
        ]
    )
    msg = final_message(events)
    assert [(b.id, b.name, b.input) for b in msg.content] == [("a", "f", {}), ("b", "g", {"x": 1})]


def test_upstream_error_mid_stream_becomes_an_error_event() -> None:
    error = {"message": "cut", "type": "upstream_error", "code": "stream_interrupted"}
    events = run([chunk({"content": "Hi"}), {"error": error}])
    assert events[-1] == {"type": "error", "error": {"type": "api_error", "message": "cut"}}
    assert "message_stop" not in [e["type"] for e in events]


def test_closing_the_events_closes_the_pipeline_stream() -> None:
    closed: list[bool] = []

    async def pipeline() -> AsyncIterator[bytes]:
        try:
            for i in range(100):
                yield b"data: " + orjson.dumps(chunk({"content": f" w{i}"})) + b"\n\n"
        finally:
            closed.append(True)  # where the pipeline records and bills the request

    async def leave_early() -> None:
        events = anthropic_events(pipeline(), "m", "id")
        async for ev in events:
            if b"content_block_delta" in ev:
                break
        await events.aclose()

    asyncio.run(leave_early())
    assert closed == [True]
