"""The response cache through the gateway: `router serve` + mock upstream + the openai client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
MOCK_POLICY = ROOT / "policies" / "examples" / "mock.yaml"


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamProcess]:
    with MockUpstreamProcess() as m:
        yield m


@pytest.fixture(scope="module")
def gateway(
    mock: MockUpstreamProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("cache-gw")
    env = {"MOCK_UPSTREAM_URL": mock.url, "ROUTER_DATA_DIR": str(tmp / "data")}
    with GatewayProcess(MOCK_POLICY, env=env, log_path=tmp / "gateway.log") as gw:
        yield gw


@pytest.fixture
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url, api_key="unused", max_retries=0, timeout=30)


def upstream_calls(mock: MockUpstreamProcess) -> int:
    with httpx.Client(base_url=mock.base_url) as c:
        stats: dict[str, int] = c.get("/_mock/stats").json()["by_model"]
    return sum(stats.values())


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_readyz_reports_redis(gateway: GatewayProcess) -> None:
    body = httpx.get(gateway.base_url + "/readyz").json()
    assert body["checks"]["redis"]["ok"] is True


def test_json_then_json_and_stream_hits(client: openai.OpenAI, mock: MockUpstreamProcess) -> None:
    msgs = ask("What is the capital of Portugal?")
    first = client.chat.completions.with_raw_response.create(
        model="auto", messages=msgs, temperature=0
    )
    assert first.headers["x-router-cache"] == "miss"
    calls = upstream_calls(mock)
    answer = first.parse().choices[0].message.content

    again = client.chat.completions.with_raw_response.create(
        model="auto", messages=msgs, temperature=0
    )
    assert again.headers["x-router-cache"] == "hit-exact"
    hit = again.parse()
    assert hit.choices[0].message.content == answer and hit.usage is not None
    assert float(again.headers["x-router-cost-usd"]) == 0.0

    with client.chat.completions.with_streaming_response.create(
        model="auto",
        messages=msgs,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    ) as resp:
        assert resp.headers["x-router-cache"] == "hit-exact"
        chunks = list(resp.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == answer
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert upstream_calls(mock) == calls  # neither hit reached the upstream


def test_stream_miss_is_stored_and_replayed(
    client: openai.OpenAI, mock: MockUpstreamProcess
) -> None:
    msgs = ask("Name three rivers in Brazil.")
    with client.chat.completions.with_streaming_response.create(
        model="auto", messages=msgs, temperature=0, stream=True
    ) as resp:
        assert resp.headers["x-router-cache"] == "miss"
        streamed = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
    calls = upstream_calls(mock)
    for _ in range(20):  # the store runs in the background
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=msgs, temperature=0
        )
        if raw.headers["x-router-cache"] == "hit-exact":
            break
    assert raw.headers["x-router-cache"] == "hit-exact"
    assert raw.parse().choices[0].message.content == streamed
    assert upstream_calls(mock) <= calls + 19


def test_nonzero_temperature_is_not_cached(client: openai.OpenAI) -> None:
    msgs = ask("Tell me a joke about penguins.")
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=msgs, temperature=0.8
        )
        assert raw.headers["x-router-cache"] == "miss"


def test_cache_control_headers(client: openai.OpenAI, mock: MockUpstreamProcess) -> None:
    msgs = ask("What is the tallest building in Chile?")
    no_store = {"Cache-Control": "no-store"}
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=msgs, temperature=0, extra_headers=no_store
        )
        assert raw.headers["x-router-cache"] == "miss"
    client.chat.completions.create(model="auto", messages=msgs, temperature=0)
    calls = upstream_calls(mock)
    for _ in range(20):
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=msgs, temperature=0
        )
        if raw.headers["x-router-cache"] == "hit-exact":
            break
    assert raw.headers["x-router-cache"] == "hit-exact"
    refresh = client.chat.completions.with_raw_response.create(
        model="auto", messages=msgs, temperature=0, extra_headers={"Cache-Control": "no-cache"}
    )
    assert refresh.headers["x-router-cache"] == "miss"
    assert upstream_calls(mock) > calls
