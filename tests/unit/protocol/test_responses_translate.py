"""Responses requests to chat completions: items, Codex's tools, formats, and refusals."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from router.errors import InvalidRequest
from router.protocol.responses import Translation, parse_responses_request, translate


def tr(body: dict[str, Any], prior: list[dict[str, Any]] | None = None) -> Translation:
    return translate(parse_responses_request(orjson.dumps(body)), prior or [])


def chat(body: dict[str, Any]) -> dict[str, Any]:
    return tr(body).chat.raw_body()


def refused(body: Any) -> InvalidRequest:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(InvalidRequest) as err:
        translate(parse_responses_request(raw), [])
    return err.value


def test_string_input_and_instructions() -> None:
    out = chat({"model": "auto", "input": "hi", "instructions": "be brief"})
    assert out["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert out["stream"] is False and "stream_options" not in out


def test_stream_asks_for_usage() -> None:
    out = chat({"model": "auto", "input": "hi", "stream": True})
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}


def test_developer_and_system_items_become_system_messages() -> None:
    out = chat(
        {
            "model": "auto",
            "input": [
                {
                    "type": "message",
                    "role": "developer",
                    "content": [
                        {"type": "input_text", "text": "rule one"},
                        {"type": "input_text", "text": "rule two"},
                    ],
                },
                {"role": "system", "content": "sys"},
                {"role": "user", "content": [{"type": "input_text", "text": "q"}]},
            ],
        }
    )
    assert out["messages"] == [
        {"role": "system", "content": "rule one\nrule two"},
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "q"},
    ]


def test_images_and_files_in_user_content() -> None:
    out = chat(
        {
            "model": "auto",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "what is this"},
                        {
                            "type": "input_image",
                            "image_url": "data:image/png;base64,AAAA",
                            "detail": "low",
                        },
                        {"type": "input_file", "file_data": "JVBER", "filename": "a.pdf"},
                    ],
                }
            ],
        }
    )
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
        {"type": "file", "file": {"file_data": "JVBER", "filename": "a.pdf"}},
    ]
    assert tr(
        {
            "model": "auto",
            "input": [
                {
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "https://x/y.png"}],
                }
            ],
        }
    ).chat.has_images()


def test_function_calls_join_the_assistant_message_and_outputs_become_tool_messages() -> None:
    out = chat(
        {
            "model": "auto",
            "input": [
                {"role": "user", "content": "weather?"},
                {
                    "type": "message",
                    "role": "assistant",
                    "id": "msg_1",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
                },
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "zzz"},
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "w", "arguments": '{"a":1}'},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "rain"}],
                },
            ],
        }
    )
    assert out["messages"][1] == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}},
            {"id": "c2", "type": "function", "function": {"name": "w", "arguments": '{"a":1}'}},
        ],
    }
    assert out["messages"][2:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
    ]


def test_codex_tools_namespaces_custom_and_hosted() -> None:
    t = tr(
        {
            "model": "auto",
            "input": "go",
            "tool_choice": "auto",
            "parallel_tool_calls": True,
            "tools": [
                {
                    "type": "function",
                    "name": "exec_command",
                    "strict": False,
                    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
                },
                {
                    "type": "namespace",
                    "name": "agents",
                    "description": "sub-agents",
                    "tools": [{"type": "function", "name": "spawn", "parameters": {}}],
                },
                {
                    "type": "custom",
                    "name": "apply_patch",
                    "description": "Patch files.",
                    "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"},
                },
                {"type": "web_search", "external_web_access": False},
            ],
        }
    )
    out = t.chat.raw_body()
    names = [x["function"]["name"] for x in out["tools"]]
    assert names == ["exec_command", "spawn", "apply_patch"]
    assert out["tools"][0]["function"]["strict"] is False
    patch = out["tools"][2]["function"]
    assert patch["parameters"]["required"] == ["input"] and "start: x" in patch["description"]
    assert t.tools.custom == frozenset({"apply_patch"})
    assert t.tools.namespaces == {"spawn": "agents"}
    assert t.ignored == ("tools[3] (web_search)",)
    assert out["tool_choice"] == "auto" and out["parallel_tool_calls"] is True


def test_custom_tool_call_items_round_trip_as_function_calls() -> None:
    out = chat(
        {
            "model": "auto",
            "input": [
                {
                    "type": "custom_tool_call",
                    "call_id": "c",
                    "name": "apply_patch",
                    "input": "*** x",
                },
                {"type": "custom_tool_call_output", "call_id": "c", "output": "done"},
            ],
        }
    )
    call = out["messages"][0]["tool_calls"][0]
    assert orjson.loads(call["function"]["arguments"]) == {"input": "*** x"}
    assert out["messages"][1] == {"role": "tool", "tool_call_id": "c", "content": "done"}


def test_tool_choice_forms() -> None:
    tools = [{"type": "function", "name": "a"}, {"type": "function", "name": "b"}]
    named = chat(
        {
            "model": "m",
            "input": "x",
            "tools": tools,
            "tool_choice": {"type": "function", "name": "b"},
        }
    )
    assert named["tool_choice"] == {"type": "function", "function": {"name": "b"}}
    allowed = chat(
        {
            "model": "m",
            "input": "x",
            "tools": tools,
            "tool_choice": {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [{"type": "function", "name": "a"}],
            },
        }
    )
    assert allowed["tool_choice"] == "required"
    assert [t["function"]["name"] for t in allowed["tools"]] == ["a"]


def test_formats_reasoning_and_sampling() -> None:
    out = chat(
        {
            "model": "m",
            "input": "x",
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "City",
                    "strict": True,
                    "schema": {"type": "object"},
                },
                "verbosity": "low",
            },
            "reasoning": {"effort": "high", "summary": "auto"},
            "max_output_tokens": 64,
            "temperature": 0.5,
            "top_p": 0.5,
            "user": "u1",
            "prompt_cache_key": "k",
            "metadata": {"a": "b"},
            "store": False,
            "include": ["reasoning.encrypted_content"],
        }
    )
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "City", "schema": {"type": "object"}, "strict": True},
    }
    assert out["verbosity"] == "low" and out["reasoning_effort"] == "high"
    assert (out["max_completion_tokens"], out["temperature"], out["top_p"]) == (64, 0.5, 0.5)
    assert out["user"] == "u1" and out["prompt_cache_key"] == "k"
    assert "metadata" not in out and "store" not in out and "include" not in out
    assert chat({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}})[
        "response_format"
    ] == {"type": "json_object"}


def test_previous_messages_come_first_and_instructions_do_not_carry_over() -> None:
    prior = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    t = tr({"model": "m", "input": "c", "instructions": "new"}, prior)
    assert t.chat.raw_body()["messages"] == [
        {"role": "system", "content": "new"},
        *prior,
        {"role": "user", "content": "c"},
    ]
    assert t.history == [*prior, {"role": "user", "content": "c"}]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": "x", "temperature": "0.5"}, "temperature"),
        ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "m", "input": "x", "metadata": {"k": 1}}, "metadata.k"),
        ({"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": "m", "input": "x", "tool_choice": "required"}, "tool_choice"),
        ({"model": "m", "input": "x", "conversation": "c1"}, "conversation"),
        ({"model": "m", "input": "x", "prompt": {"id": "p"}}, "prompt"),
        ({"model": "m", "input": "x", "truncation": "auto"}, "truncation"),
        ({"model": "m", "input": [{"role": "user", "content": 5}]}, "input[0].content"),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "input[0].content[0].type",
        ),
        (
            {
                "model": "m",
                "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}],
            },
            "input[0].content[0].image_url",
        ),
        (
            {
                "model": "m",
                "input": [
                    {"role": "system", "content": [{"type": "input_image", "image_url": "u"}]}
                ],
            },
            "input[0].content[0].type",
        ),
        (
            {"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
        ),
        ({"model": "m", "input": [{"type": "web_search_call", "id": "w"}]}, "input[0].type"),
        ({"model": "m", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
        (
            {
                "model": "m",
                "input": "x",
                "tools": [{"type": "function", "name": "a"}, {"type": "function", "name": "a"}],
            },
            "tools[1].name",
        ),
        (
            {
                "model": "m",
                "input": "x",
                "tools": [{"type": "function", "name": "a"}],
                "tool_choice": {"type": "function", "name": "b"},
            },
            "tool_choice.name",
        ),
        (
            {
                "model": "m",
                "input": "x",
                "tools": [{"type": "function", "name": "a"}],
                "tool_choice": {"type": "web_search"},
            },
            "tool_choice.type",
        ),
        (
            {"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}},
            "text.format.schema",
        ),
        ({"model": "m", "input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        # found by fuzzing: non-string types and names are 400s, not crashes
        ({"model": "m", "input": "x", "tools": [{"type": {"a": 1}}]}, "tools[0].type"),
        (
            {
                "model": "m",
                "input": "x",
                "tools": [{"type": "function", "name": "a"}],
                "tool_choice": {"type": "function", "name": {"x": 1}},
            },
            "tool_choice.name",
        ),
    ],
)
def test_refusals_name_the_field(body: dict[str, Any], param: str) -> None:
    err = refused(body)
    assert err.status == 400 and err.param == param, err.message


def test_malformed_json_and_non_objects() -> None:
    assert refused(b"{nope").code == "invalid_json"
    assert refused(b"[1]").code == "invalid_json"
