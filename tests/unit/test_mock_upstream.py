"""Unit tests of the mock upstream: reply and usage logic, knobs, and the ASGI app in memory."""

from __future__ import annotations

import json
from typing import Any

import httpx
import orjson
import pytest

from router.testing.mock_app import MockApp, build_mock_app
from router.testing.mock_config import MockConfig, RequestControl, parse_model_directives
from router.testing.mock_replies import (
    MockRequestError,
    build_reply,
    completion_body,
    count_prompt_tokens,
    default_reply_text,
    embeddings_body,
    stream_events,
    tokenize,
)
from router.testing.mock_schema import value_for_schema
from router.testing.mock_upstream import parse_args

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit", "days"],
        },
    },
}


def _body(prompt: str = "Hello there, how are you today?", **extra: Any) -> dict[str, Any]:
    return {"model": "mock-model", "messages": [{"role": "user", "content": prompt}], **extra}


def _sse_payloads(raw: bytes) -> list[Any]:
    out: list[Any] = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        assert block.startswith("data: ")
        data = block[len("data: ") :]
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


# ---- reply logic --------------------------------------------------------------------------------


def test_reply_is_deterministic_and_names_the_prompt() -> None:
    text = default_reply_text("What is the capital of France?")
    assert text == default_reply_text("What is the capital of France?")
    assert text.startswith("Mock reply ") and text.endswith("to: What is the capital of France?")
    assert default_reply_text("other prompt") != text
    assert len(default_reply_text("x" * 100).split("to: ", 1)[1]) == 40


def test_tokenize_round_trips() -> None:
    text = "Mock reply  abc\nto: two words"
    assert "".join(tokenize(text)) == text
    assert len(tokenize(text)) == 6


def test_prompt_tokens_formula() -> None:
    messages = [{"role": "system", "content": "abcd" * 5}, {"role": "user", "content": "abc"}]
    assert count_prompt_tokens(messages) == 6 + 3 * 2  # ceil(23 / 4) + 3 per message
    parts = [{"role": "user", "content": [{"type": "text", "text": "abcdefgh"}]}]
    assert count_prompt_tokens(parts) == 2 + 3


def test_usage_is_the_same_for_stream_and_plain() -> None:
    reply = build_reply(_body(), MockConfig())
    plain = completion_body(reply, "m", "id", 1)
    events = stream_events(reply, "m", "id", 1, include_usage=True)
    payloads = _sse_payloads(b"".join(e.data for e in events))
    assert payloads[-1] == "[DONE]"
    usage_chunk = payloads[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == plain["usage"]
    content = "".join(
        p["choices"][0]["delta"].get("content") or ""
        for p in payloads[:-2]
        if p["choices"] and "content" in p["choices"][0]["delta"]
    )
    assert content == plain["choices"][0]["message"]["content"]
    token_events = [e for e in events if e.is_token]
    assert len(token_events) == plain["usage"]["completion_tokens"]
    assert payloads[0]["choices"][0]["delta"]["role"] == "assistant"
    assert payloads[-3]["choices"][0]["finish_reason"] == "stop"


def test_stream_without_include_usage_has_no_usage_chunk() -> None:
    reply = build_reply(_body(), MockConfig())
    payloads = _sse_payloads(b"".join(e.data for e in stream_events(reply, "m", "i", 1, False)))
    assert all(p == "[DONE]" or p["choices"] for p in payloads)
    assert all(p == "[DONE]" or "usage" not in p for p in payloads)


def test_max_tokens_truncates_with_length() -> None:
    reply = build_reply(_body(max_tokens=3), MockConfig())
    assert reply.choices[0].finish_reason == "length"
    assert reply.completion_tokens == 3
    assert (
        reply.choices[0].content
        == "Mock reply " + default_reply_text("Hello there, how are you today?").split()[2]
    )
    newer = build_reply(_body(max_tokens=50, max_completion_tokens=2), MockConfig())
    assert newer.completion_tokens == 2


def test_stop_sequence_cuts_the_reply() -> None:
    reply = build_reply(_body(stop=["to:"]), MockConfig())
    assert reply.choices[0].content is not None
    assert reply.choices[0].content.endswith(" ") is False
    assert "to:" not in reply.choices[0].content
    assert reply.choices[0].finish_reason == "stop"


def test_n_choices_differ_and_usage_sums() -> None:
    reply = build_reply(_body(n=3), MockConfig())
    texts = {c.content for c in reply.choices}
    assert len(texts) == 3
    assert reply.completion_tokens == sum(len(c.tokens) for c in reply.choices)


def test_reply_tokens_and_usage_overrides() -> None:
    reply = build_reply(_body(), MockConfig(reply_tokens=40, prompt_tokens=7))
    assert reply.completion_tokens == 40 and reply.prompt_tokens == 7
    short = build_reply(_body(), MockConfig(completion_tokens=99), reply_tokens=2)
    assert len(short.choices[0].tokens) == 2 and short.completion_tokens == 99


def test_canned_answer() -> None:
    config = MockConfig(canned={"capital of France": "Paris."})
    reply = build_reply(_body("What is the capital of France?"), config)
    assert reply.choices[0].content == "Paris."


def test_json_object_and_schema_replies_are_valid_json() -> None:
    obj = build_reply(_body(response_format={"type": "json_object"}), MockConfig())
    assert "reply" in json.loads(obj.choices[0].content or "")
    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "string"},
            "score": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "kind": {"$ref": "#/$defs/Kind"},
        },
        "$defs": {"Kind": {"enum": ["a", "b"]}},
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    value = json.loads(
        build_reply(_body(response_format=fmt), MockConfig()).choices[0].content or ""
    )
    assert set(value) == {"answer", "score", "tags", "kind"}
    assert value["kind"] == "a" and isinstance(value["tags"], list)
    assert value_for_schema({"type": ["null", "integer"]}, "a b") == 2
    assert value_for_schema({"type": "integer", "minimum": 5}, "a b") == 5
    assert value_for_schema({"type": "string", "format": "date"}, "a") == "2024-01-01"
    assert value_for_schema({"type": "string", "maxLength": 3}, "abcdef") == "abc"
    assert value_for_schema({"type": "array", "items": {}, "minItems": 2}, "t") == ["t", "t"]


def test_tool_call_when_asked() -> None:
    reply = build_reply(_body("Please call tool for Paris", tools=[WEATHER_TOOL]), MockConfig())
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.content is None
    assert choice.tool_call is not None and choice.tool_call.name == "get_weather"
    args = json.loads(choice.tool_call.arguments)
    assert args["unit"] == "celsius" and isinstance(args["days"], int)
    assert "".join(choice.tokens) == choice.tool_call.arguments
    assert reply.completion_tokens == len(choice.tokens)


def test_tool_choice_rules() -> None:
    plain = build_reply(_body("just chat", tools=[WEATHER_TOOL]), MockConfig())
    assert plain.choices[0].tool_call is None
    required = build_reply(
        _body("just chat", tools=[WEATHER_TOOL], tool_choice="required"), MockConfig()
    )
    assert required.choices[0].tool_call is not None
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert (
        build_reply(_body("x", tools=[WEATHER_TOOL], tool_choice=named), MockConfig())
        .choices[0]
        .tool_call
    )
    off = build_reply(_body("call tool", tools=[WEATHER_TOOL], tool_choice="none"), MockConfig())
    assert off.choices[0].tool_call is None


def test_reply_after_tool_result_is_text() -> None:
    body = _body("call tool please", tools=[WEATHER_TOOL])
    body["messages"] += [
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
    ]
    reply = build_reply(body, MockConfig())
    assert reply.choices[0].tool_call is None
    assert (reply.choices[0].content or "").endswith("using tool result: sunny, 21C")


def test_tool_call_stream_shape() -> None:
    reply = build_reply(_body("call tool", tools=[WEATHER_TOOL]), MockConfig())
    payloads = _sse_payloads(b"".join(e.data for e in stream_events(reply, "m", "i", 1, False)))
    first = payloads[0]["choices"][0]["delta"]
    call = first["tool_calls"][0]
    assert call["index"] == 0 and call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": ""}
    pieces = [
        p["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] for p in payloads[1:-2]
    ]
    assert json.loads("".join(pieces))["unit"] == "celsius"
    assert payloads[-2]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "messages": "hi"}, "messages"),
        ({**_body(), "n": 0}, "n"),
        ({**_body(), "max_tokens": "ten"}, "max_tokens"),
        ({**_body(), "stop": 5}, "stop"),
    ],
)
def test_bad_fields_are_rejected(body: dict[str, Any], param: str) -> None:
    with pytest.raises(MockRequestError) as info:
        build_reply(body, MockConfig())
    assert info.value.param == param


def test_embeddings_are_deterministic_unit_vectors() -> None:
    out = embeddings_body({"model": "e", "input": ["a", "b", "a"], "dimensions": 8})
    vectors = [d["embedding"] for d in out["data"]]
    assert vectors[0] == vectors[2] != vectors[1] and len(vectors[0]) == 8
    assert abs(sum(v * v for v in vectors[0]) - 1.0) < 1e-9
    encoded = embeddings_body({"model": "e", "input": "a", "encoding_format": "base64"})
    assert isinstance(encoded["data"][0]["embedding"], str)
    with pytest.raises(MockRequestError):
        embeddings_body({"model": "e", "input": [1, 2]})


# ---- knobs --------------------------------------------------------------------------------------


def test_model_directives() -> None:
    assert parse_model_directives("gpt-4o") == RequestControl()
    ctl = parse_model_directives("openai/mock-fail-429-first-2")
    assert ctl.fail_status == 429 and ctl.fail_first_n == 2
    ctl = parse_model_directives("mock-latency-20-tps-50-cut-3-hang")
    assert (ctl.latency_ms, ctl.tokens_per_s, ctl.stream_cut_after, ctl.hang) == (20, 50, 3, True)
    assert parse_model_directives("mock-model").fail_status is None


def test_parse_args_merges_json_and_flags() -> None:
    host, port, config = parse_args(
        ["--port", "0", "--config-json", '{"latency_ms": 5, "fail_rate": 0.5}', "--latency-ms", "7"]
    )
    assert (host, port) == ("127.0.0.1", 0)
    assert config.latency_ms == 7 and config.fail_rate == 0.5
    _, _, config = parse_args(["--fail-models", "a,b", "--hang", "--canned-json", '{"x": "y"}'])
    assert config.fail_models == ("a", "b") and config.hang and config.canned == {"x": "y"}
    with pytest.raises(SystemExit):
        parse_args(["--fail-rate", "2"])


def test_config_update_validates() -> None:
    config = MockConfig().updated({"fail_status": 503, "fail_first_n": 2})
    assert config.fail_status == 503
    with pytest.raises(ValueError):
        MockConfig().updated({"fail_rate": 2})
    with pytest.raises(ValueError):
        MockConfig().updated({"no_such_knob": 1})


# ---- the ASGI app, in memory --------------------------------------------------------------------


async def _client(app: MockApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mock")


async def test_app_chat_models_health_and_stats() -> None:
    app = build_mock_app(MockConfig())
    async with await _client(app) as client:
        r = await client.post("/v1/chat/completions", json=_body(temperature=0.2, seed=3))
        assert r.status_code == 200
        assert r.json()["object"] == "chat.completion"
        r = await client.post(
            "/v1/chat/completions",
            json=_body(stream=True, stream_options={"include_usage": True}),
        )
        assert r.headers["content-type"].startswith("text/event-stream")
        assert _sse_payloads(r.content)[-1] == "[DONE]"
        models = [m["id"] for m in (await client.get("/v1/models")).json()["data"]]
        assert "mock-model" in models and "mock-hosted" in models
        r = await client.post("/v1/embeddings", json={"model": "e", "input": "hi"})
        assert r.status_code == 200 and len(r.json()["data"][0]["embedding"]) == 16
        assert (await client.get("/health")).status_code == 200
        stats = (await client.get("/_mock/stats")).json()
        assert stats["total_requests"] == 2 and stats["stream_requests"] == 1
        assert stats["by_path"]["/embeddings"] == 1
        assert stats["by_model"] == {"mock-model": 2}
        last = stats["last_requests"][1]["body"]
        assert last["stream_options"] == {"include_usage": True}
        assert stats["last_requests"][0]["body"]["seed"] == 3
        await client.post("/v1/_mock/reset")  # the control surface also answers under /v1
        assert (await client.get("/_mock/stats")).json()["total_requests"] == 0


async def test_app_errors() -> None:
    app = build_mock_app(MockConfig(require_api_key="sk-good"))
    async with await _client(app) as client:
        r = await client.post("/v1/chat/completions", content=b"{not json")
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
        r = await client.post("/v1/chat/completions", json=_body())
        assert r.status_code == 401 and set(r.json()["error"]) == {
            "message",
            "type",
            "param",
            "code",
        }
        auth = {"authorization": "Bearer sk-good"}
        r = await client.post("/v1/chat/completions", json=_body(n="x"), headers=auth)
        assert r.status_code == 400 and r.json()["error"]["param"] == "n"
        r = await client.post(
            "/v1/chat/completions", json=_body(), headers={**auth, "x-mock-fail-status": "503"}
        )
        assert r.status_code == 503 and r.json()["error"]["type"] == "server_error"
        r = await client.post(
            "/v1/chat/completions", json={**_body(), "model": "mock-fail-429"}, headers=auth
        )
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert (await client.get("/nope")).status_code == 404


async def test_app_fail_first_n_then_succeed_and_runtime_config() -> None:
    app = build_mock_app(MockConfig())
    async with await _client(app) as client:
        r = await client.post(
            "/_mock/config", json={"fail_status": 500, "fail_first_n": 2, "fail_models": ["a"]}
        )
        assert r.status_code == 200 and r.json()["fail_first_n"] == 2
        codes = [
            (await client.post("/v1/chat/completions", json={**_body(), "model": m})).status_code
            for m in ("b", "a", "a", "a")
        ]
        assert codes == [200, 500, 500, 200]
        assert (await client.post("/_mock/config", json={"fail_rate": 3})).status_code == 400
        assert (await client.post("/_mock/config", content=b"[")).status_code == 400
        await client.post("/_mock/reset")
        assert (await client.get("/_mock/config")).json()["fail_status"] is None


async def test_app_fail_rate_is_seeded() -> None:
    async def run() -> list[int]:
        app = build_mock_app(MockConfig(fail_status=503, fail_rate=0.5, fail_seed=7))
        async with await _client(app) as client:
            return [
                (await client.post("/v1/chat/completions", json=_body())).status_code
                for _ in range(20)
            ]

    first = await run()
    assert first == await run()
    assert 0 < first.count(503) < 20


async def test_app_eof_and_error_stream_cuts_have_no_done() -> None:
    app = build_mock_app(MockConfig(stream_cut_after=2, stream_cut_mode="eof"))
    async with await _client(app) as client:
        r = await client.post("/v1/chat/completions", json=_body(stream=True))
        payloads = _sse_payloads(r.content)
        assert len(payloads) == 2 and "[DONE]" not in payloads
        await client.post("/_mock/config", json={"stream_cut_mode": "error"})
        r = await client.post("/v1/chat/completions", json=_body(stream=True))
        payloads = _sse_payloads(r.content)
        assert len(payloads) == 3 and payloads[-1]["error"]["type"] == "server_error"


def test_stats_bodies_are_json_serialisable() -> None:
    app = build_mock_app(MockConfig(history_size=1))
    assert orjson.loads(orjson.dumps(app.state.stats()))["last_requests"] == []
