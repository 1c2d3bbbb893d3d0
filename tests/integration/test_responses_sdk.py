"""``/v1/responses`` end to end: the official openai SDK against `router serve` processes on the
mock upstream, with virtual keys of two tenants on one shared Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage
from pydantic import BaseModel

from router.ledger.record import LedgerRecord
from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess
from tests.integration.budget_support import gateway, make_key, own_redis, write_policy
from tests.integration.protocol_support import ledger_row

pytestmark = pytest.mark.integration

WEATHER_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


class Setup:
    """Two gateway replicas on one Redis, the mock upstream, and a key per tenant."""

    def __init__(self, mock: MockUpstreamProcess, a: GatewayProcess, b: GatewayProcess) -> None:
        self.mock, self.a, self.b = mock, a, b
        self.key_a = ""
        self.key_b = ""
        self.redis_url = ""

    def client(
        self, key: str | None = None, replica: GatewayProcess | None = None
    ) -> openai.OpenAI:
        gw = replica or self.a
        return openai.OpenAI(base_url=gw.url, api_key=key or self.key_a, max_retries=0, timeout=30)

    def upstream_calls(self) -> int:
        stats: dict[str, int] = self.mock.stats()["by_model"]
        return sum(stats.values())

    def ledger_row(self, request_id: str, timeout_s: float = 15.0) -> LedgerRecord:
        return ledger_row(self.redis_url, request_id, timeout_s)

    def last_upstream_body(self) -> dict[str, Any]:
        body: dict[str, Any] = self.mock.stats()["last_requests"][-1]["body"]
        return body


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("responses")
    policy = write_policy(tmp, auth="keys")
    with (
        own_redis(tmp) as redis_url,
        MockUpstreamProcess() as mock,
        gateway(policy, mock.url, redis_url, tmp / "a.log") as a,
        gateway(policy, mock.url, redis_url, tmp / "b.log") as b,
    ):
        s = Setup(mock, a, b)
        s.redis_url = redis_url
        s.key_a, _ = make_key(redis_url, "team-a", 100.0)
        s.key_b, _ = make_key(redis_url, "team-b", 100.0)
        yield s


def test_plain_string_input(setup: Setup) -> None:
    raw = setup.client().responses.with_raw_response.create(
        model="auto", input="What is the capital of France?", instructions="Be brief."
    )
    resp = raw.parse()
    assert resp.object == "response" and resp.status == "completed"
    assert resp.id.startswith("resp_") and resp.output_text
    assert resp.usage is not None and resp.usage.input_tokens > 0
    assert resp.instructions == "Be brief."
    assert raw.headers["x-router-model"] == "mock-local"
    assert float(raw.headers["x-router-cost-usd"]) > 0
    sent = setup.last_upstream_body()
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["messages"][1] == {"role": "user", "content": "What is the capital of France?"}


def test_items_with_developer_role_and_params(setup: Setup) -> None:
    resp = setup.client().responses.create(
        model="mock-hosted",
        input=[
            {"role": "developer", "content": "Answer in French."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        ],
        max_output_tokens=50,
        temperature=0.2,
        top_p=0.9,
        reasoning={"effort": "low"},
        metadata={"ticket": "42"},
    )
    assert resp.metadata == {"ticket": "42"} and resp.max_output_tokens == 50
    sent = setup.last_upstream_body()
    assert sent["messages"][0] == {"role": "system", "content": "Answer in French."}
    assert sent["max_completion_tokens"] == 50 and sent["temperature"] == 0.2
    assert sent["reasoning_effort"] == "low" and "metadata" not in sent


def test_streamed_events_in_order(setup: Setup) -> None:
    events = list(setup.client().responses.create(model="auto", input="Say hello", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output_text == deltas and deltas
    assert done.response.usage is not None and done.response.usage.output_tokens > 0


def test_stream_helper_accumulates(setup: Setup) -> None:
    with setup.client().responses.stream(model="auto", input="Say hello") as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.output_text == "".join(texts) and final.status == "completed"


def test_tool_call_then_output_continues(setup: Setup) -> None:
    client = setup.client()
    first = client.responses.create(
        model="mock-hosted", input="call tool get_weather for Paris", tools=[WEATHER_TOOL]
    )
    calls = [o for o in first.output if isinstance(o, ResponseFunctionToolCall)]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert "city" in json.loads(calls[0].arguments)
    second = client.responses.create(
        model="mock-hosted",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}],
        tools=[WEATHER_TOOL],
    )
    assert "sunny" in second.output_text
    sent = setup.last_upstream_body()["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == calls[0].call_id
    assert sent[-1] == {"role": "tool", "tool_call_id": calls[0].call_id, "content": "sunny"}


def test_streamed_tool_call_arguments(setup: Setup) -> None:
    with setup.client().responses.stream(
        model="mock-hosted", input="call tool get_weather for Oslo", tools=[WEATHER_TOOL]
    ) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert kinds.index("response.function_call_arguments.done") < kinds.index("response.completed")
    call = final.output[0]
    assert isinstance(call, ResponseFunctionToolCall) and json.loads(call.arguments)


def test_json_schema_text_format(setup: Setup) -> None:
    class City(BaseModel):
        name: str
        population: int

    parsed = setup.client().responses.parse(
        model="mock-hosted", input="A city, please", text_format=City
    )
    assert isinstance(parsed.output_parsed, City)
    fmt = setup.last_upstream_body()["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "City"


def test_previous_response_id_across_replicas(setup: Setup) -> None:
    first = setup.client().responses.create(model="auto", input="My name is Ada.")
    # the follow-up goes to the other replica: the conversation lives in Redis
    second = setup.client(replica=setup.b).responses.create(
        model="auto", input="What is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    sent = setup.last_upstream_body()["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "My name is Ada."
    assert sent[1]["content"] == first.output_text


def test_get_and_delete(setup: Setup) -> None:
    client = setup.client()
    made = client.responses.create(model="auto", input="Remember me")
    got = setup.client(replica=setup.b).responses.retrieve(made.id)
    assert got.id == made.id and got.output_text == made.output_text
    client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)


def test_store_false_keeps_nothing(setup: Setup) -> None:
    client = setup.client()
    made = client.responses.create(model="auto", input="Forget me", store=False)
    assert (made.model_extra or {})["store"] is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)


def test_tenants_never_see_each_other(setup: Setup) -> None:
    made = setup.client().responses.create(model="auto", input="secret of tenant a")
    other = setup.client(key=setup.key_b)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError) as err:
        other.responses.create(model="auto", input="and?", previous_response_id=made.id)
    assert err.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert setup.client().responses.retrieve(made.id).id == made.id  # still there for a


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "auto"}, "input"),
        ({"model": "auto", "input": 3}, "input"),
        ({"model": "auto", "input": "x", "temperature": 3}, "temperature"),
        ({"model": "auto", "input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"model": "auto", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": "auto", "input": "x", "tools": [{"type": "nope"}]}, "tools[0].type"),
        ({"model": "auto", "input": "x", "background": True}, "background"),
        (
            {"model": "auto", "input": "x", "text": {"format": {"type": "json_schema"}}},
            "text.format.name",
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    setup: Setup, body: dict[str, Any], param: str
) -> None:
    before = setup.upstream_calls()
    r = httpx.post(
        setup.a.url + "/responses",
        json=body,
        headers={"authorization": f"Bearer {setup.key_a}"},
        timeout=30,
    )
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error"
    assert "x-router-cost-usd" not in r.headers
    assert setup.upstream_calls() == before  # nothing reached a model, nothing was charged


def test_sdk_raises_bad_request(setup: Setup) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        setup.client().responses.create(model="auto", input="x", max_output_tokens=0)
    assert err.value.body["param"] == "max_output_tokens"  # type: ignore[index]


def test_message_item_shape(setup: Setup) -> None:
    resp = setup.client().responses.create(model="auto", input="Hello")
    msg = resp.output[-1]
    assert isinstance(msg, ResponseOutputMessage) and msg.role == "assistant"
    assert msg.status == "completed" and msg.content[0].type == "output_text"


def test_upstream_failure_mid_stream_is_response_failed(setup: Setup) -> None:
    setup.mock.configure(stream_cut_after=3, stream_cut_mode="abort")
    try:
        events = list(
            setup.client().responses.create(
                model="mock-hosted", input="Tell me a long story", stream=True
            )
        )
    finally:
        setup.mock.configure(stream_cut_after=None)
    assert events[0].type == "response.created"
    assert any(e.type == "response.output_text.delta" for e in events)
    last = events[-1]
    assert last.type == "response.failed"
    assert last.response.status == "failed" and last.response.error is not None
    stored = setup.client().responses.retrieve(last.response.id)
    assert stored.status == "failed"


def test_cache_hits_render_as_responses(setup: Setup) -> None:
    client = setup.client()
    ask: dict[str, Any] = {"model": "auto", "input": "Cache me: 2+2?", "temperature": 0}
    first = client.responses.with_raw_response.create(**ask)
    before = setup.upstream_calls()
    again = client.responses.with_raw_response.create(**ask)
    # exact or semantic: the first answer is stored in the background, and the exact lookup
    # may run before that store has landed
    assert again.headers["x-router-cache"].startswith("hit-")
    assert setup.upstream_calls() == before
    assert again.parse().output_text == first.parse().output_text
    assert again.parse().id != first.parse().id  # a new response, with its own id
    with client.responses.stream(**ask) as stream:
        final = stream.get_final_response()
    assert final.output_text == first.parse().output_text and final.status == "completed"
    assert setup.upstream_calls() == before


def test_streamed_response_is_ledgered(setup: Setup) -> None:
    with setup.client().responses.with_streaming_response.create(
        model="mock-hosted", input="Say hello", stream=True
    ) as raw:
        rid = raw.headers["x-request-id"]
        kinds = [line for line in raw.iter_lines() if line.startswith("event: ")]
    assert kinds[-1] == "event: response.completed"
    row = setup.ledger_row(rid)
    assert row.status == 200 and row.model == "mock-hosted" and row.cost_usd > 0
    assert row.stream and row.prompt_tokens > 0 and not row.estimated


def test_client_gone_mid_stream_is_still_billed(setup: Setup) -> None:
    setup.mock.configure(tokens_per_s=40, reply_tokens=200)
    try:
        with httpx.stream(
            "POST",
            setup.a.url + "/responses",
            json={"model": "mock-hosted", "input": "Tell me a story", "stream": True},
            headers={"authorization": f"Bearer {setup.key_a}"},
            timeout=30,
        ) as r:
            rid = r.headers["x-request-id"]
            for line in r.iter_lines():
                if "response.output_text.delta" in line:
                    break  # leave after the first token
        row = setup.ledger_row(rid, timeout_s=30)
    finally:
        setup.mock.configure(tokens_per_s=0, reply_tokens=None)
    assert row.status == 499 and row.error == "client_disconnected"
    assert row.cost_usd > 0 and row.completion_tokens > 0
