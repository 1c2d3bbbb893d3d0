"""Chat to Responses and back, for upstreams that speak Responses natively."""

from __future__ import annotations

from typing import Any

import orjson

from router.protocol.chat_request import ChatRequest
from router.protocol.responses import ResponsesChatRequest, parse_responses_request, translate
from router.protocol.responses_reverse import EventsToChunks, chat_to_responses, responses_to_chat


def test_chat_to_responses() -> None:
    body = chat_to_responses(
        {
            "model": "m",
            "stream": True,
            "messages": [
                {"role": "system", "content": "sys"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "https://x/i.png", "detail": "low"},
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {}}},
            "max_tokens": 9,
            "temperature": 0,
            "reasoning_effort": "low",
        }
    )
    assert body["input"] == [
        {"role": "developer", "content": "sys"},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "https://x/i.png", "detail": "low"},
            ],
        },
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
    ]
    assert body["tools"] == [{"type": "function", "name": "f", "parameters": {}}]
    assert body["tool_choice"] == {"type": "function", "name": "f"}
    assert body["text"] == {"format": {"type": "json_schema", "name": "n", "schema": {}}}
    assert (body["max_output_tokens"], body["temperature"], body["stream"]) == (9, 0, True)
    assert body["reasoning"] == {"effort": "low"} and body["store"] is False


def test_responses_to_chat() -> None:
    chat, usage = responses_to_chat(
        {
            "id": "resp_1",
            "model": "m",
            "created_at": 5,
            "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "output": [
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "hm"}]},
                {"type": "message", "content": [{"type": "output_text", "text": "Hi"}]},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            ],
            "usage": {
                "input_tokens": 3,
                "output_tokens": 4,
                "input_tokens_details": {"cached_tokens": 1},
            },
        }
    )
    msg = chat["choices"][0]["message"]
    assert msg["content"] == "Hi" and msg["reasoning_content"] == "hm"
    assert msg["tool_calls"][0]["id"] == "c" and chat["choices"][0]["finish_reason"] == "length"
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (3, 4)
    assert chat["usage"]["prompt_tokens_details"]["cached_tokens"] == 1


def test_events_to_chunks() -> None:
    r = EventsToChunks(model="m")
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {"id": "resp_9", "model": "up"}},
        {"type": "response.output_text.delta", "delta": "He"},
        {
            "type": "response.output_item.added",
            "item": {"type": "function_call", "id": "fc_1", "call_id": "c", "name": "f"},
        },
        {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "delta": "{}"},
        {
            "type": "response.completed",
            "response": {"usage": {"input_tokens": 2, "output_tokens": 3}},
        },
    ]
    chunks = [c for ev in events for c in r.event(ev)]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[1] == {"content": "He"}
    assert deltas[2]["tool_calls"][0]["id"] == "c"
    assert deltas[3]["tool_calls"][0] == {"index": 0, "function": {"arguments": "{}"}}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 5
    assert r.done and r.usage is not None and chunks[0]["id"] == "resp_9"


def _translated(body: dict[str, Any]) -> ChatRequest:
    return translate(parse_responses_request(orjson.dumps(body)), []).chat


def test_the_native_body_is_sent_only_while_the_messages_are_untouched() -> None:
    body = {"model": "m", "input": "my email is a@b.co", "metadata": {"k": "v"}}
    chat = _translated(body)
    assert isinstance(chat, ResponsesChatRequest) and chat.native_body() == body
    redacted = {**chat.raw_body(), "messages": [{"role": "user", "content": "my email is [E]"}]}
    chat._raw = redacted  # what a guard's redaction does to the body sent upstream
    assert chat.native_body() is None
    continued = translate(
        parse_responses_request(orjson.dumps(body)), [{"role": "user", "content": "before"}]
    ).chat
    assert isinstance(continued, ResponsesChatRequest) and continued.native_body() is None
