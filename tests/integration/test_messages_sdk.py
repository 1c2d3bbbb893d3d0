"""End to end with the official ``anthropic`` SDK: ``router serve``, Redis and the mock upstream.

Covers ``messages.create`` (plain, streamed, tools, images), ``messages.count_tokens``, the
Anthropic error shape naming the field with nothing charged, ``context_length_exceeded``, and
prompt caching through a litellm ``anthropic/...`` model on the mock's native Messages surface.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.integration.messages_support import PRICES_USD_PER_MTOK, Stack, messages_stack

pytestmark = pytest.mark.integration
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]
# a 1x1 PNG
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with messages_stack(tmp_path_factory.mktemp("messages")) as s:
        yield s


@pytest.fixture
def client(stack: Stack) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=stack.gateway.base_url, api_key=stack.secret, max_retries=0, timeout=30
    ) as c:
        yield c


def priced(model: str, prompt: int, completion: int) -> float:
    inp, out = PRICES_USD_PER_MTOK[model]
    return (prompt * inp + completion * out) / 1_000_000


def test_plain_create_is_billed_as_reported(stack: Stack, client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(
        model="mock-hosted",
        max_tokens=64,
        system="Be brief.",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        metadata={"user_id": "user-7"},
    )
    msg = raw.parse()
    assert msg.type == "message" and msg.role == "assistant" and msg.stop_reason == "end_turn"
    assert msg.content[0].type == "text" and "capital of France" in msg.content[0].text
    assert raw.headers["x-router-model"] == "mock-hosted"
    upstream = stack.last_upstream_body()
    assert upstream["messages"][0] == {"role": "system", "content": "Be brief."}
    assert upstream["user"] == "user-7" and upstream["max_tokens"] == 64
    rec = stack.record(raw.headers["x-request-id"])
    assert (rec.prompt_tokens, rec.completion_tokens) == (
        msg.usage.input_tokens,
        msg.usage.output_tokens,
    )
    assert rec.cost_usd == pytest.approx(
        priced("mock-hosted", msg.usage.input_tokens, msg.usage.output_tokens)
    )


def test_stream_final_message_carries_the_billed_usage(
    stack: Stack, client: anthropic.Anthropic
) -> None:
    with client.messages.stream(
        model="mock-hosted",
        max_tokens=64,
        messages=[{"role": "user", "content": "Tell me about streams please"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert text == final.content[0].text and "streams please" in text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens == len(text.split())
    rec = stack.record(request_id)
    assert rec.stream and not rec.estimated
    assert (rec.prompt_tokens, rec.completion_tokens) == (
        final.usage.input_tokens,
        final.usage.output_tokens,
    )


@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_round_trip(client: anthropic.Anthropic, stream: bool) -> None:
    ask: list[Any] = [{"role": "user", "content": "call tool get_weather for Paris"}]
    first: anthropic.types.Message
    if stream:
        with client.messages.stream(
            model="mock-hosted", max_tokens=64, tools=TOOLS, messages=ask
        ) as s:
            first = s.get_final_message()
    else:
        first = client.messages.create(
            model="mock-hosted", max_tokens=64, tools=TOOLS, messages=ask
        )
    assert first.stop_reason == "tool_use"
    call = first.content[-1]
    assert call.type == "tool_use" and call.name == "get_weather"
    assert isinstance(call.input, dict) and isinstance(call.input["city"], str)
    second = client.messages.create(
        model="mock-hosted",
        max_tokens=64,
        tools=TOOLS,
        messages=[
            *ask,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert "using tool result: sunny" in second.content[0].text  # type: ignore[union-attr]


def test_image_reaches_a_vision_model(stack: Stack, client: anthropic.Anthropic) -> None:
    msg = client.messages.create(
        model="auto",
        max_tokens=32,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {"type": "text", "text": "What is in this picture?"},
                ],
            }
        ],
    )
    assert msg.content[0].type == "text"
    parts = stack.last_upstream_body()["messages"][0]["content"]
    assert stack.last_upstream_body()["model"] == "mock-hosted"  # the only vision tier
    assert parts[0] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}


def test_count_tokens(client: anthropic.Anthropic) -> None:
    short = client.messages.count_tokens(
        model="mock-hosted", messages=[{"role": "user", "content": "hello"}]
    )
    long = client.messages.count_tokens(
        model="mock-hosted",
        system="You are terse.",
        tools=TOOLS,
        messages=[{"role": "user", "content": "hello " * 200}],
    )
    assert 0 < short.input_tokens < long.input_tokens


BAD: list[tuple[dict[str, Any], str]] = [
    ({"messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
    (
        {"max_tokens": 8, "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
        "messages[0].content[0].text",
    ),
    ({"max_tokens": 8, "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    (
        {"max_tokens": 8, "messages": [{"role": "user", "content": "hi"}], "temperature": 3},
        "temperature",
    ),
    (
        {
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "f", "type": "web_search_20250305"}],
        },
        "tools[0].input_schema",
    ),
]


@pytest.mark.parametrize(("body", "field"), BAD)
def test_bad_input_is_an_anthropic_error_naming_the_field_and_costs_nothing(
    stack: Stack, body: dict[str, Any], field: str
) -> None:
    before_upstream = stack.mock_stats()["total_requests"]
    before_rows = len(stack.ledger())
    r = httpx.post(
        stack.gateway.base_url + "/v1/messages",
        json={"model": "mock-hosted", **body},
        headers={"x-api-key": stack.secret, "anthropic-version": "2023-06-01"},
        timeout=30,
    )
    assert r.status_code == 400
    err = r.json()
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
    assert f"'{field}'" in err["error"]["message"]
    assert stack.mock_stats()["total_requests"] == before_upstream
    assert len(stack.ledger()) == before_rows


def test_sdk_raises_bad_request_with_the_field(client: anthropic.Anthropic) -> None:
    bad_image: list[Any] = [{"type": "image", "source": {"type": "x"}}]
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model="mock-hosted", max_tokens=8, messages=[{"role": "user", "content": bad_image}]
        )
    assert "messages[0].content[0].source.type" in str(info.value)


def test_auth_by_x_api_key_or_bearer(stack: Stack) -> None:
    url = stack.gateway.base_url + "/v1/messages"
    body = {"model": "mock-hosted", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    bearer = httpx.post(url, json=body, headers={"authorization": f"Bearer {stack.secret}"})
    assert bearer.status_code == 200 and bearer.json()["type"] == "message"
    missing = httpx.post(url, json=body)
    assert missing.status_code == 401 and "x-api-key" in missing.json()["error"]["message"]
    wrong = httpx.post(url, json=body, headers={"x-api-key": "sk-wrong"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["type"] == "authentication_error"
    with (
        anthropic.Anthropic(base_url=stack.gateway.base_url, api_key="sk-wrong") as c,
        pytest.raises(anthropic.AuthenticationError),
    ):
        c.messages.count_tokens(model="mock-hosted", messages=[{"role": "user", "content": "x"}])


def test_too_long_for_every_tier_is_prompt_too_long(
    stack: Stack, client: anthropic.Anthropic
) -> None:
    before = stack.mock_stats()["total_requests"]
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model="small-only",
            max_tokens=16,
            messages=[{"role": "user", "content": "word " * 400}],
        )
    assert info.value.status_code == 400
    message = info.value.body["error"]["message"]  # type: ignore[index]
    assert message.startswith("prompt is too long: ") and "64 maximum" in message
    assert stack.mock_stats()["total_requests"] == before
    # the same request on chat completions: OpenAI's code
    r = httpx.post(
        stack.gateway.base_url + "/v1/chat/completions",
        json={"model": "small-only", "messages": [{"role": "user", "content": "word " * 400}]},
        headers={"authorization": f"Bearer {stack.secret}"},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"


def test_cache_control_reaches_anthropic_and_cached_tokens_are_discounted(
    stack: Stack, client: anthropic.Anthropic
) -> None:
    system: list[Any] = [
        {
            "type": "text",
            "text": "You are a meticulous assistant. " * 60,
            "cache_control": {"type": "ephemeral"},
        }
    ]
    messages: list[Any] = [{"role": "user", "content": "Hello cache"}]
    first = client.messages.with_raw_response.create(
        model="claude-mock", max_tokens=32, system=system, messages=messages
    )
    upstream = stack.last_upstream_body()
    assert upstream["system"] == system  # unchanged, cache_control included
    with client.messages.stream(
        model="claude-mock", max_tokens=32, system=system, messages=messages
    ) as s:
        second = s.get_final_message()
        second_id = s.response.headers["x-request-id"]
    written = first.parse().usage
    assert written.cache_creation_input_tokens and written.cache_creation_input_tokens > 100
    assert second.usage.cache_read_input_tokens == written.cache_creation_input_tokens
    assert second.usage.input_tokens == written.input_tokens
    out = second.usage.output_tokens
    rec_write = stack.record(first.headers["x-request-id"])
    rec_read = stack.record(second_id)
    cached = written.cache_creation_input_tokens
    fresh = written.input_tokens
    assert rec_write.cache_write_tokens == cached and rec_read.cache_read_tokens == cached
    assert rec_read.prompt_tokens == fresh + cached  # every prompt token once
    assert rec_write.cost_usd == pytest.approx(
        (fresh * 3.0 + cached * 3.75 + written.output_tokens * 15.0) / 1e6
    )
    assert rec_read.cost_usd == pytest.approx((fresh * 3.0 + cached * 0.3 + out * 15.0) / 1e6)


def test_openai_compatible_model_gets_no_anthropic_only_fields(
    stack: Stack, client: anthropic.Anthropic
) -> None:
    cc: Any = {"type": "ephemeral"}
    thinking: Any = {"type": "thinking", "thinking": "hm", "signature": "c2ln"}
    client.messages.create(
        model="mock-hosted",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        system=[{"type": "text", "text": "sys", "cache_control": cc}],
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [thinking, {"type": "text", "text": "Hello!"}]},
            {"role": "user", "content": [{"type": "text", "text": "again", "cache_control": cc}]},
        ],
    )
    upstream = stack.last_upstream_body()
    assert upstream["messages"][0] == {
        "role": "system",
        "content": [{"type": "text", "text": "sys"}],
    }
    assert upstream["messages"][2] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "Hello!"}],
    }
    assert not {"thinking", "x_router_protocol", "cache_control"} & set(upstream)
    assert "cache_control" not in str(upstream)


def test_thinking_blocks_reach_anthropic_intact(stack: Stack, client: anthropic.Anthropic) -> None:
    thinking: Any = {
        "type": "thinking",
        "thinking": "The user wants a greeting.",
        "signature": "c2ln",
    }
    client.messages.create(
        model="claude-mock",
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [thinking, {"type": "text", "text": "Hello!"}]},
            {"role": "user", "content": "again"},
        ],
    )
    upstream = stack.last_upstream_body()
    assert upstream["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert upstream["messages"][1]["content"][0] == thinking


def test_client_gone_mid_stream_is_still_billed_in_full(stack: Stack) -> None:
    control = httpx.Client(base_url=stack.mock.base_url)
    control.post("/_mock/config", json={"tokens_per_s": 40, "reply_tokens": 40})
    try:
        body = {
            "model": "mock-hosted",
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "a long story please"}],
        }
        with httpx.stream(
            "POST",
            stack.gateway.base_url + "/v1/messages",
            json=body,
            headers={"x-api-key": stack.secret},
            timeout=30,
        ) as r:
            request_id = r.headers["x-request-id"]
            for line in r.iter_lines():
                if "content_block_delta" in line:
                    break  # leave after the first token
        rec = stack.record(request_id)
        assert rec.completion_tokens == 40 and not rec.estimated  # the upstream's own count
        assert rec.cost_usd == pytest.approx(priced("mock-hosted", rec.prompt_tokens, 40))
    finally:
        control.post("/_mock/config", json={"tokens_per_s": 0, "reply_tokens": None})
        control.close()


@pytest.mark.parametrize("stream", [False, True])
def test_openai_cached_tokens_are_discounted(stack: Stack, stream: bool) -> None:
    control = httpx.Client(base_url=stack.mock.base_url)
    control.post("/_mock/config", json={"prompt_tokens": 1000, "cached_tokens": 600})
    try:
        body: dict[str, Any] = {
            "model": "mock-hosted",
            "max_tokens": 16,
            "stream": stream,
            "messages": [{"role": "user", "content": f"cached prefix please {stream}"}],
        }
        headers = {"x-api-key": stack.secret}
        url = stack.gateway.base_url + "/v1/messages"
        if stream:
            with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as r:
                request_id = r.headers["x-request-id"]
                events = [line for line in r.iter_lines() if line.startswith("data:")]
            usage = next(e for e in events if "message_delta" in e)
            assert '"cache_read_input_tokens":600' in usage and '"input_tokens":400' in usage
        else:
            r = httpx.post(url, json=body, headers=headers, timeout=30)
            request_id = r.headers["x-request-id"]
            assert r.json()["usage"]["cache_read_input_tokens"] == 600
            assert r.json()["usage"]["input_tokens"] == 400
        rec = stack.record(request_id)
        assert (rec.prompt_tokens, rec.cache_read_tokens) == (1000, 600)
        out = rec.completion_tokens
        assert rec.cost_usd == pytest.approx((400 * 2.5 + 600 * 1.25 + out * 10.0) / 1e6)
    finally:
        control.post("/_mock/config", json={"prompt_tokens": None, "cached_tokens": 0})
        control.close()


def test_cache_hit_is_served_as_a_message_and_a_stream(
    stack: Stack, client: anthropic.Anthropic
) -> None:
    ask: list[Any] = [{"role": "user", "content": "What is a cached answer, exactly?"}]
    first = client.messages.with_raw_response.create(
        model="mock-hosted", max_tokens=64, messages=ask, extra_body={"temperature": 0}
    )
    assert first.headers["x-router-cache"] == "miss"
    upstream = stack.mock_stats()["total_requests"]
    again = client.messages.with_raw_response.create(
        model="mock-hosted", max_tokens=64, messages=ask, extra_body={"temperature": 0}
    )
    assert again.headers["x-router-cache"] == "hit-exact"
    assert again.parse().content == first.parse().content
    with client.messages.stream(
        model="mock-hosted", max_tokens=64, messages=ask, extra_body={"temperature": 0}
    ) as s:
        streamed = s.get_final_message()
        assert s.response.headers["x-router-cache"] == "hit-exact"
    assert streamed.content[0].text == first.parse().content[0].text  # type: ignore[union-attr]
    assert stack.mock_stats()["total_requests"] == upstream
    assert stack.record(again.headers["x-request-id"]).cost_usd == 0.0


def test_count_tokens_bad_input_and_unknown_model(stack: Stack) -> None:
    url = stack.gateway.base_url + "/v1/messages/count_tokens"
    headers = {"x-api-key": stack.secret}
    bad = httpx.post(
        url,
        json={"model": "mock-hosted", "messages": [{"role": "user", "content": 7}]},
        headers=headers,
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    assert "'messages[0].content'" in bad.json()["error"]["message"]
    unknown = httpx.post(
        url, json={"model": "nope", "messages": [{"role": "user", "content": "x"}]}, headers=headers
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "not_found_error"
