"""A model whose upstream speaks Responses natively (``backend: openai_responses``): the
client's ``/v1/responses`` body reaches it as sent, chat requests reach it translated, and the
gateway bills, caches and renders its answers like any other model's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.responses import ResponseFunctionToolCall

from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess
from tests.integration.budget_support import gateway, own_redis, write_policy
from tests.integration.protocol_support import ledger_row

pytestmark = pytest.mark.integration

NATIVE = (
    "  - name: native\n"
    "    backend: openai_responses\n"
    "    upstream_model: mock-responses\n"
    "    tier: hosted\n"
    "    endpoint: ${MOCK_UPSTREAM_URL}\n"
    "    price: {input_usd_per_mtok: 1.0, output_usd_per_mtok: 2.0}\n"
)
TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


class Setup:
    def __init__(self, mock: MockUpstreamProcess, gw: GatewayProcess, redis_url: str) -> None:
        self.mock, self.gw, self.redis_url = mock, gw, redis_url
        self.client = openai.OpenAI(base_url=gw.url, api_key="unused", max_retries=0, timeout=30)

    def last(self) -> dict[str, Any]:
        request: dict[str, Any] = self.mock.stats()["last_requests"][-1]
        return request


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("native")
    policy = write_policy(tmp, auth="none", extra_models=NATIVE)
    with (
        own_redis(tmp) as redis_url,
        MockUpstreamProcess() as mock,
        gateway(policy, mock.url, redis_url, tmp / "gw.log") as gw,
    ):
        yield Setup(mock, gw, redis_url)


def test_the_request_goes_upstream_as_sent(setup: Setup) -> None:
    items: Any = [
        {"role": "developer", "content": "Be terse."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
    ]
    raw = setup.client.responses.with_raw_response.create(
        model="native", input=items, instructions="Answer in English.", metadata={"t": "1"}
    )
    resp = raw.parse()
    assert resp.status == "completed" and resp.output_text.startswith("Mock reply")
    assert raw.headers["x-router-model"] == "native"
    sent = setup.last()
    assert sent["path"] == "/v1/responses"
    body = sent["body"]
    assert body["model"] == "mock-responses" and body["stream"] is False
    assert body["input"] == items and body["instructions"] == "Answer in English."
    assert body["metadata"] == {"t": "1"}
    row = ledger_row(setup.redis_url, raw.headers["x-request-id"])
    assert row.model == "native" and row.cost_usd > 0 and row.prompt_tokens > 0


def test_streamed_and_tools(setup: Setup) -> None:
    with setup.client.responses.stream(
        model="native", input="call tool get_weather for Rome", tools=[TOOL]
    ) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.function_call_arguments.delta" in kinds
    call = final.output[0]
    assert isinstance(call, ResponseFunctionToolCall) and call.name == "get_weather"
    assert setup.last()["body"]["stream"] is True and setup.last()["body"]["tools"] == [TOOL]


def test_chat_clients_reach_it_translated(setup: Setup) -> None:
    out = setup.client.chat.completions.create(
        model="native",
        messages=[{"role": "system", "content": "sys"}, {"role": "user", "content": "Hello"}],
        max_tokens=20,
    )
    assert out.choices[0].message.content and out.usage is not None
    body = setup.last()["body"]
    assert body["input"] == [
        {"role": "developer", "content": "sys"},
        {"role": "user", "content": "Hello"},
    ]
    assert body["max_output_tokens"] == 20
    chunks = list(
        setup.client.chat.completions.create(
            model="native",
            messages=[{"role": "user", "content": "Hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == out.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_a_continued_conversation_is_sent_whole(setup: Setup) -> None:
    first = setup.client.responses.create(model="native", input="My name is Ada.")
    setup.client.responses.create(
        model="native", input="What is my name?", previous_response_id=first.id
    )
    body = setup.last()["body"]
    assert "previous_response_id" not in body  # the upstream never saw the gateway's ids
    assert [i["role"] for i in body["input"]] == ["user", "assistant", "user"]
    assert body["input"][1]["content"] == first.output_text
