"""Chat answers as Responses objects and events, checked against the openai SDK's own types."""

from __future__ import annotations

from typing import Any

import orjson
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from router.protocol.responses import parse_responses_request, translate
from router.protocol.responses_render import (
    EventTranslator,
    ResponseMeta,
    assistant_message,
    chat_events,
    completed_response,
)

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
TOOLS = [
    {"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
    {"type": "custom", "name": "apply_patch"},
    {
        "type": "namespace",
        "name": "ns",
        "description": "d",
        "tools": [{"type": "function", "name": "spawn"}],
    },
]


def meta(**body: Any) -> ResponseMeta:
    req = parse_responses_request(orjson.dumps({"model": "auto", "input": "hi", **body}))
    return ResponseMeta(request=req, translation=translate(req, []))


def completion(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "mock-local",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": 6},
        },
    }


def test_text_answer() -> None:
    body = completed_response(
        meta(metadata={"a": "b"}, instructions="be nice"),
        completion({"role": "assistant", "content": "Hello!"}),
    )
    resp = Response.model_validate(body)
    assert resp.output_text == "Hello!" and resp.status == "completed"
    assert resp.model == "mock-local" and resp.metadata == {"a": "b"}
    assert resp.usage is not None and resp.usage.total_tokens == 14
    assert resp.usage.input_tokens_details.cached_tokens == 6
    assert resp.instructions == "be nice" and body["store"] is True


def test_tool_calls_reasoning_and_truncation() -> None:
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}},
        {
            "id": "c2",
            "type": "function",
            "function": {"name": "apply_patch", "arguments": '{"input": "*** Begin"}'},
        },
        {"id": "c3", "type": "function", "function": {"name": "spawn", "arguments": "{}"}},
    ]
    msg = {"role": "assistant", "content": None, "reasoning_content": "think", "tool_calls": calls}
    body = completed_response(meta(tools=TOOLS), completion(msg, "length"))
    resp = Response.model_validate(body)
    assert [o.type for o in resp.output] == [
        "reasoning",
        "function_call",
        "custom_tool_call",
        "function_call",
    ]
    assert resp.status == "incomplete"
    assert resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"
    assert body["output"][2]["input"] == "*** Begin"
    assert body["output"][3]["namespace"] == "ns"
    back = assistant_message(body["output"])
    assert back is not None and [c["id"] for c in back["tool_calls"]] == ["c1", "c2", "c3"]
    assert orjson.loads(back["tool_calls"][1]["function"]["arguments"]) == {"input": "*** Begin"}


def stream_of(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def run(m: ResponseMeta, raw: bytes, split: int = 7) -> tuple[list[Any], EventTranslator]:
    """Feed ``raw`` in ``split``-byte pieces (events cut anywhere) and parse what comes out."""
    t = EventTranslator(m)
    out = t.start()
    buf = bytearray()
    failed = False
    for i in range(0, len(raw), split):
        for chunk in chat_events(buf, raw[i : i + split]):
            if chunk is None:
                continue
            if "error" in chunk:
                out += t.fail(chunk["error"])
                failed = True
            else:
                out += t.chunk(chunk)
    if not failed:
        out += t.finish()
    events = []
    for ev in out:
        head, data = ev.split(b"\ndata: ", 1)
        parsed = EVENTS.validate_python(orjson.loads(data))
        assert head == b"event: " + parsed.type.encode()
        events.append(parsed)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    return events, t


def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"model": "mock-local", "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


USAGE = {
    "model": "mock-local",
    "choices": [],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2},
}


def test_text_stream_order() -> None:
    raw = stream_of(
        [
            delta({"role": "assistant", "content": ""}),
            delta({"content": "Hel"}),
            delta({"content": "lo"}),
            delta({}, "stop"),
            USAGE,
        ]
    )
    events, _ = run(meta(stream=True), raw)
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[-1].response.output_text == "Hello"
    assert events[-1].response.usage.output_tokens == 2
    assert events[0].response.status == "in_progress"


def test_reasoning_then_text_then_tool_calls() -> None:
    raw = stream_of(
        [
            delta({"reasoning_content": "hmm"}),
            delta({"content": "Let me check."}),
            delta(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    ]
                }
            ),
            delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
            delta({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
            delta(
                {
                    "tool_calls": [
                        {
                            "index": 1,
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "apply_patch", "arguments": '{"input": "P"}'},
                        }
                    ]
                }
            ),
            delta({}, "tool_calls"),
            USAGE,
        ]
    )
    events, _ = run(meta(stream=True, tools=TOOLS), raw, split=5)
    kinds = [e.type for e in events]
    assert kinds.count("response.output_item.added") == 4
    assert kinds.count("response.output_item.done") == 4
    assert "response.reasoning_text.delta" in kinds
    args = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert args[0].arguments == '{"city":"Oslo"}' and args[0].name == "get_weather"
    custom = [e for e in events if e.type == "response.custom_tool_call_input.done"]
    assert custom[0].input == "P"
    final = events[-1].response
    assert [o.type for o in final.output] == [
        "reasoning",
        "message",
        "function_call",
        "custom_tool_call",
    ]
    assert final.output[2].status == "completed"


def test_length_finish_is_incomplete() -> None:
    events, _ = run(meta(stream=True), stream_of([delta({"content": "a"}, "length"), USAGE]))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"


def test_mid_stream_error_is_response_failed() -> None:
    err = {"error": {"message": "cut", "type": "upstream_error", "param": None, "code": "x"}}
    raw = stream_of([delta({"content": "partial"})]).replace(
        b"data: [DONE]\n\n", b"data: " + orjson.dumps(err) + b"\n\ndata: [DONE]\n\n"
    )
    events, t = run(meta(stream=True), raw)
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.message == "cut"
    assert t.final is not None and t.final["status"] == "failed"
