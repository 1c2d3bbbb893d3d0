"""Anthropic Messages requests: validation naming the field, and the translation to chat."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from router.errors import InvalidRequest
from router.protocol.messages import (
    SOURCE,
    SOURCE_FIELD,
    openai_body,
    parse_count_tokens_request,
    parse_messages_request,
    to_chat_request,
)

TOOL = {
    "name": "get_weather",
    "description": "Weather of a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def chat(body: dict[str, Any]) -> dict[str, Any]:
    return to_chat_request(parse_messages_request(orjson.dumps(body))).raw_body()


def base(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 64, **fields}


def test_plain_text_and_sampling_fields() -> None:
    out = chat(
        base(
            messages=[{"role": "user", "content": "hi"}],
            system="be brief",
            stop_sequences=["END"],
            temperature=0.5,
            top_p=0.9,
            metadata={"user_id": "u-1"},
        )
    )
    assert out["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert out["stop"] == ["END"] and out["user"] == "u-1" and out["max_tokens"] == 64
    assert out["temperature"] == 0.5 and out["top_p"] == 0.9
    assert "stream" not in out


def test_cache_control_kept_on_system_text_image_tool_result_and_tools() -> None:
    cc = {"type": "ephemeral"}
    image = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    out = chat(
        base(
            system=[{"type": "text", "text": "long system", "cache_control": cc}],
            tools=[{**TOOL, "cache_control": cc}],
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": image, "cache_control": cc},
                        {"type": "text", "text": "what is it?", "cache_control": cc},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": "sunny",
                            "cache_control": cc,
                        }
                    ],
                },
            ],
        )
    )
    system, user, _, tool = out["messages"]
    assert system["content"] == [{"type": "text", "text": "long system", "cache_control": cc}]
    assert user["content"][0] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
        "cache_control": cc,
    }
    assert user["content"][1]["cache_control"] == cc
    assert tool == {
        "role": "tool",
        "tool_call_id": "t1",
        "content": [{"type": "text", "text": "sunny", "cache_control": cc}],
    }
    assert out["tools"][0]["cache_control"] == cc
    assert out["tools"][0]["function"]["parameters"] == TOOL["input_schema"]


def test_thinking_blocks_and_tool_use_kept_on_the_assistant_turn() -> None:
    thinking = {"type": "thinking", "thinking": "let me see", "signature": "sig=="}
    redacted = {"type": "redacted_thinking", "data": "opaque"}
    out = chat(
        base(
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": [
                        thinking,
                        redacted,
                        {"type": "text", "text": "checking"},
                        {"type": "tool_use", "id": "t1", "name": "w", "input": {"city": "Oslo"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "rain"},
                        {"type": "text", "text": "and tomorrow?"},
                    ],
                },
            ],
        )
    )
    assistant = out["messages"][1]
    assert assistant["thinking_blocks"] == [thinking, redacted]
    assert assistant["content"] == [{"type": "text", "text": "checking"}]
    assert assistant["tool_calls"] == [
        {"id": "t1", "type": "function", "function": {"name": "w", "arguments": '{"city":"Oslo"}'}}
    ]
    # tool results come right after the tool calls, the user's text after them
    assert out["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": "rain"}
    assert out["messages"][3] == {
        "role": "user",
        "content": [{"type": "text", "text": "and tomorrow?"}],
    }
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        (
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            {"type": "function", "function": {"name": "get_weather"}},
            False,
        ),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any, parallel: bool | None) -> None:
    out = chat(base(messages=[{"role": "user", "content": "x"}], tools=[TOOL], tool_choice=choice))
    assert out["tool_choice"] == expected
    assert out.get("parallel_tool_calls") == parallel


def test_mid_conversation_system_turn_and_top_level_cache_control() -> None:
    out = chat(
        base(
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "system", "content": [{"type": "text", "text": "reminder"}]},
            ],
            cache_control={"type": "ephemeral"},
        )
    )
    assert out["messages"][1] == {
        "role": "system",
        "content": [{"type": "text", "text": "reminder"}],
    }
    assert out["cache_control"] == {"type": "ephemeral"}


def test_stream_always_asks_for_usage() -> None:
    out = chat(base(messages=[{"role": "user", "content": "x"}], stream=True))
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}


def test_image_request_needs_vision() -> None:
    image = {"type": "url", "url": "https://example.com/a.png"}
    body = base(messages=[{"role": "user", "content": [{"type": "image", "source": image}]}])
    req = to_chat_request(parse_messages_request(orjson.dumps(body)))
    assert req.has_images()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        (base(messages=[]), "messages"),
        (base(messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
        (
            base(messages=[{"role": "system", "content": [{"type": "image"}]}]),
            "messages[0].content[0].type",
        ),
        (
            base(messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}]),
            "messages[0].content[0].text",
        ),
        (
            base(messages=[{"role": "user", "content": [{"type": "video"}]}]),
            "messages[0].content[0].type",
        ),
        (
            base(messages=[{"role": "user", "content": [{"type": "text"}]}]),
            "messages[0].content[0].text",
        ),
        (
            base(messages=[{"role": "user", "content": [{"type": "image", "source": {}}]}]),
            "messages[0].content[0].source.type",
        ),
        (
            base(
                messages=[
                    {"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "b"}]}
                ]
            ),
            "messages[0].content[0].type",
        ),
        (base(messages=[{"role": "user", "content": "x"}], temperature=1.5), "temperature"),
        (base(messages=[{"role": "user", "content": "x"}], max_tokens="9"), "max_tokens"),
        (
            base(messages=[{"role": "user", "content": "x"}], tools=[{"name": "f"}]),
            "tools[0].input_schema",
        ),
        (
            base(
                messages=[{"role": "user", "content": "x"}],
                tools=[{"type": "web_search_20250305", "name": "web", "input_schema": {}}],
            ),
            "tools[0].type",
        ),
        (
            base(messages=[{"role": "user", "content": "x"}], tool_choice={"type": "tool"}),
            "tool_choice.name",
        ),
        (
            base(messages=[{"role": "user", "content": "x"}], stop_sequences=list("abcde")),
            "stop_sequences",
        ),
        (
            base(messages=[{"role": "user", "content": "x"}], system=[{"type": "image"}]),
            "system[0].type",
        ),
    ],
)
def test_bad_input_names_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        to_chat_request(parse_messages_request(orjson.dumps(body)))
    assert info.value.param == param
    assert info.value.status == 400


def test_not_json() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_messages_request(b"{not json")
    assert info.value.code == "invalid_json"


def test_count_tokens_body_needs_no_max_tokens() -> None:
    req = parse_count_tokens_request(
        orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    )
    body = to_chat_request(req).raw_body()
    assert "max_tokens" not in body and body["messages"] == [{"role": "user", "content": "x"}]


def test_openai_body_drops_what_only_anthropic_reads() -> None:
    cc = {"type": "ephemeral"}
    body = chat(
        base(
            system=[{"type": "text", "text": "sys", "cache_control": cc}],
            thinking={"type": "adaptive"},
            cache_control=cc,
            tools=[{**TOOL, "cache_control": cc}],
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": cc}]},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "t", "signature": "s"},
                        {"type": "text", "text": "a"},
                    ],
                },
                {"role": "user", "content": "next"},
            ],
        )
    )
    assert body[SOURCE_FIELD] == SOURCE
    plain = openai_body(body)
    text = orjson.dumps(plain).decode()
    for anthropic_only in ("cache_control", "thinking", SOURCE_FIELD):
        assert anthropic_only not in text
    assert plain["messages"][0] == {"role": "system", "content": [{"type": "text", "text": "sys"}]}
    assert plain["messages"][2] == {"role": "assistant", "content": [{"type": "text", "text": "a"}]}
    assert body["messages"][0]["content"][0]["cache_control"] == cc  # the original is kept
    chat_request = {"model": "m", "messages": [], "cache_control": cc}
    assert openai_body(chat_request) is chat_request  # chat clients' fields are theirs
