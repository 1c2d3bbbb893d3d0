"""The mock upstream as a real process (and in-loop server), driven by the openai client."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pydantic
import pytest

from router.testing.mock_config import MockConfig
from router.testing.mock_upstream import MockUpstreamProcess, running_mock

pytestmark = pytest.mark.integration

WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
USER: Any = [{"role": "user", "content": "Tell me something about otters."}]


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamProcess]:
    with MockUpstreamProcess(require_api_key="sk-mock") as process:
        yield process


@pytest.fixture
def client(mock: MockUpstreamProcess) -> Iterator[openai.OpenAI]:
    mock.reset()
    with openai.OpenAI(base_url=mock.url, api_key="sk-mock", max_retries=0, timeout=10) as c:
        yield c


def test_non_streaming(client: openai.OpenAI, mock: MockUpstreamProcess) -> None:
    out = client.chat.completions.create(model="mock-model", messages=USER, temperature=0.1)
    assert out.choices[0].message.content is not None
    assert out.choices[0].message.content.startswith("Mock reply ")
    assert out.choices[0].finish_reason == "stop"
    words = len(out.choices[0].message.content.split())
    assert out.usage is not None and out.usage.completion_tokens == words == 9
    again = client.chat.completions.create(model="mock-model", messages=USER)
    assert again.choices[0].message.content == out.choices[0].message.content
    stats = mock.stats()
    assert stats["by_model"] == {"mock-model": 2}
    assert stats["last_requests"][0]["body"]["temperature"] == 0.1
    assert stats["last_requests"][0]["headers"]["authorization"] == "Bearer sk-mock"


def test_streaming_with_usage_matches_plain(
    client: openai.OpenAI, mock: MockUpstreamProcess
) -> None:
    plain = client.chat.completions.create(model="mock-model", messages=USER)
    stream = client.chat.completions.create(
        model="mock-model", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == plain.choices[0].message.content
    assert finish == "stop"
    assert usage is not None and plain.usage is not None
    assert usage.completion_tokens == plain.usage.completion_tokens
    assert usage.prompt_tokens == plain.usage.prompt_tokens
    assert mock.stats()["last_requests"][-1]["body"]["stream_options"] == {"include_usage": True}


def test_tool_calls_plain_and_stream(client: openai.OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "Please call tool get_weather for Oslo"}]
    out = client.chat.completions.create(
        model="mock-model", messages=messages, tools=[WEATHER_TOOL]
    )
    call = (out.choices[0].message.tool_calls or [])[0]
    assert out.choices[0].finish_reason == "tool_calls"
    assert call.type == "function" and call.function.name == "get_weather"
    assert set(json.loads(call.function.arguments)) == {"city", "days"}

    with client.chat.completions.stream(
        model="mock-model", messages=messages, tools=[WEATHER_TOOL]
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    streamed = (final.choices[0].message.tool_calls or [])[0]
    assert streamed.id == call.id and streamed.function.arguments == call.function.arguments
    assert final.choices[0].finish_reason == "tool_calls"


def test_json_schema_reply_parses(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
        "required": ["title", "year"],
        "additionalProperties": False,
    }
    out = client.chat.completions.create(
        model="mock-model",
        messages=USER,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "movie", "schema": schema, "strict": True},
        },
    )
    value = json.loads(out.choices[0].message.content or "")
    assert isinstance(value["title"], str) and isinstance(value["year"], int)


class Movie(pydantic.BaseModel):
    title: str
    year: int
    released: datetime.date
    genres: list[str]


def test_structured_output_parse(client: openai.OpenAI) -> None:
    out = client.chat.completions.parse(model="mock-model", messages=USER, response_format=Movie)
    movie = out.choices[0].message.parsed
    assert isinstance(movie, Movie) and movie.released == datetime.date(2024, 1, 1)


@pytest.mark.parametrize(
    ("model", "error"),
    [
        ("mock-fail-429", openai.RateLimitError),
        ("mock-fail-500", openai.InternalServerError),
        ("mock-fail-503", openai.InternalServerError),
        ("mock-fail-400", openai.BadRequestError),
    ],
)
def test_error_injection_by_model(
    client: openai.OpenAI, model: str, error: type[openai.APIStatusError]
) -> None:
    with pytest.raises(error) as info:
        client.chat.completions.create(model=model, messages=USER)
    assert info.value.body is not None
    if model == "mock-fail-429":
        assert info.value.response.headers["retry-after"] == "1"


def test_bad_key_is_401(mock: MockUpstreamProcess) -> None:
    with (
        openai.OpenAI(base_url=mock.url, api_key="wrong", max_retries=0) as bad,
        pytest.raises(openai.AuthenticationError),
    ):
        bad.chat.completions.create(model="mock-model", messages=USER)


def test_fail_first_n_lets_client_retries_succeed(mock: MockUpstreamProcess) -> None:
    mock.reset()
    mock.configure(fail_status=503, fail_first_n=2, retry_after_s=0)
    with openai.OpenAI(base_url=mock.url, api_key="sk-mock", max_retries=2) as retrying:
        out = retrying.chat.completions.create(model="mock-model", messages=USER)
    assert out.choices[0].message.content
    stats = mock.stats()
    assert stats["injected_failures"] == 2 and stats["total_requests"] == 3


def test_stream_cut_midway(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="mock-cut-3", messages=USER, stream=True)
    received = 0
    with pytest.raises((httpx.HTTPError, openai.APIError)):
        for _ in stream:
            received += 1
    assert received == 3


def test_stream_error_event_midway(client: openai.OpenAI, mock: MockUpstreamProcess) -> None:
    mock.configure(stream_cut_after=2, stream_cut_mode="error")
    stream = client.chat.completions.create(model="mock-model", messages=USER, stream=True)
    with pytest.raises(openai.APIError, match="stream cut"):
        for _ in stream:
            pass


def test_hang_times_out(mock: MockUpstreamProcess) -> None:
    with (
        openai.OpenAI(base_url=mock.url, api_key="sk-mock", max_retries=0, timeout=0.5) as c,
        pytest.raises(openai.APITimeoutError),
    ):
        c.chat.completions.create(model="mock-hang", messages=USER)


async def test_running_mock_in_loop_with_pacing() -> None:
    config = MockConfig(ttft_ms=100, tokens_per_s=200, reply_tokens=10)
    async with running_mock(config) as url, openai.AsyncOpenAI(base_url=url, api_key="x") as c:
        start = time.perf_counter()
        stream = await c.chat.completions.create(model="mock-model", messages=USER, stream=True)
        first_token_s = None
        pieces = []
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                first_token_s = first_token_s or time.perf_counter() - start
                pieces.append(chunk.choices[0].delta.content)
        total_s = time.perf_counter() - start
        assert len(pieces) == 10
        assert first_token_s is not None and first_token_s >= 0.09
        assert total_s >= 0.1 + 9 / 200 * 0.9
        models = await c.models.list()
        assert "mock-hosted" in [m.id for m in models.data]
        emb = await c.embeddings.create(model="mock-embed", input=["a", "b"])
        assert len(emb.data) == 2 and len(emb.data[0].embedding) == 16
