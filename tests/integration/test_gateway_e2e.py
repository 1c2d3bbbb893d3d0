"""End to end: `router serve` and the mock upstream as processes, driven by the openai client."""

from __future__ import annotations

import os
import time
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
MSG: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
HARD: list[Any] = [
    {
        "role": "user",
        "content": "Prove step by step that the integral of x^2 is x^3/3. "
        "You must be rigorous, ensure every step is justified, and derive the formula.",
    }
]


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamProcess]:
    with MockUpstreamProcess() as m:
        yield m


@pytest.fixture(scope="module")
def gateway(
    mock: MockUpstreamProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    log = tmp_path_factory.mktemp("gw") / "gateway.log"
    with GatewayProcess(MOCK_POLICY, env={"MOCK_UPSTREAM_URL": mock.url}, log_path=log) as gw:
        yield gw


@pytest.fixture
def control(mock: MockUpstreamProcess) -> Iterator[httpx.Client]:
    """The mock's control surface; knobs are reset after each test."""
    with httpx.Client(base_url=mock.base_url) as c:
        c.post("/_mock/reset")
        yield c
        c.post(
            "/_mock/config",
            json={
                "fail_status": None,
                "fail_models": [],
                "fail_first_n": 0,
                "stream_cut_after": None,
                "hang": False,
                "latency_ms": 0,
            },
        )
        c.post("/_mock/reset")


@pytest.fixture
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url, api_key="unused", max_retries=0, timeout=30)


def by_model(control: httpx.Client) -> dict[str, int]:
    stats: dict[str, int] = control.get("/_mock/stats").json()["by_model"]
    return stats


def last_body(control: httpx.Client) -> dict[str, Any]:
    body: dict[str, Any] = control.get("/_mock/stats").json()["last_requests"][-1]["body"]
    return body


def test_non_streaming(client: openai.OpenAI, control: httpx.Client) -> None:
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=MSG)
    resp = raw.parse()
    assert resp.choices[0].message.content and resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.prompt_tokens > 0
    h = raw.headers
    assert h["x-router-model"] == "mock-local" and h["x-router-tier"] == "local"
    assert 0 <= float(h["x-router-score"]) < 0.5
    assert float(h["x-router-cost-usd"]) > 0 and len(h["x-router-policy"]) == 12
    assert h["x-request-id"]
    assert by_model(control) == {"mock-local": 1}


def test_hard_prompt_goes_to_hosted(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=HARD)
    assert raw.headers["x-router-model"] == "mock-hosted"
    assert float(raw.headers["x-router-score"]) >= 0.5


def test_params_and_extra_fields_pass_through(client: openai.OpenAI, control: httpx.Client) -> None:
    client.chat.completions.create(
        model="mock-hosted",
        messages=MSG,
        max_tokens=7,
        stop=["\n"],
        seed=3,
        n=2,
        temperature=0,
        response_format={"type": "json_object"},
        extra_body={"top_k": 5},
    )
    body = last_body(control)
    assert body["model"] == "mock-hosted"
    assert (body["max_tokens"], body["stop"], body["seed"], body["n"]) == (7, ["\n"], 3, 2)
    assert body["response_format"] == {"type": "json_object"} and body["top_k"] == 5


def test_streaming_without_usage(client: openai.OpenAI, control: httpx.Client) -> None:
    chunks = list(client.chat.completions.create(model="auto", messages=MSG, stream=True))
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Mock reply")
    # the gateway always asks the upstream for usage
    assert last_body(control)["stream_options"] == {"include_usage": True}


def test_streaming_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="auto", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
    )
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens > 0
    assert (last.usage.model_extra or {}).get("cost_usd", 0) > 0


def test_tool_calls_json_and_stream(client: openai.OpenAI) -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    resp = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "call tool: weather in Paris"}],
        tools=tools,
        tool_choice="required",
    )
    calls = resp.choices[0].message.tool_calls
    assert calls and calls[0].type == "function" and calls[0].function.name == "get_weather"
    assert resp.choices[0].finish_reason == "tool_calls"
    assert resp.model == "mock-hosted"  # the local tier cannot call tools
    stream = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "call tool: weather"}],
        tools=tools,
        tool_choice="required",
        stream=True,
    )
    names = [
        tc.function.name
        for c in stream
        if c.choices
        for tc in (c.choices[0].delta.tool_calls or [])
        if tc.function and tc.function.name
    ]
    assert names == ["get_weather"]


def test_models_list(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["auto", "mock-local", "mock-hosted", "mock-hosted-backup"]


def test_route_override_header(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=MSG, extra_headers={"x-router-route": "hosted"}
    )
    assert raw.headers["x-router-model"] == "mock-hosted" and "x-router-score" not in raw.headers


# ---- error mappings -------------------------------------------------------------------------


def test_malformed_json_and_wrong_types_are_400(gateway: GatewayProcess) -> None:
    with httpx.Client(base_url=gateway.base_url) as c:
        r = c.post("/v1/chat/completions", content=b'{"model": "auto", "messages": [')
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
        r = c.post(
            "/v1/chat/completions", json={"model": "auto", "messages": MSG, "max_tokens": "ten"}
        )
        assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"


def test_empty_messages_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="auto", messages=[])
    assert info.value.body["param"] == "messages"  # type: ignore[index]


def test_unknown_model_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-17", messages=MSG)
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_retry_then_fallback(client: openai.OpenAI, control: httpx.Client) -> None:
    control.post("/_mock/config", json={"fail_status": 500, "fail_models": ["mock-local"]})
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=MSG)
    assert raw.headers["x-router-model"] == "mock-hosted"
    assert "mock-local: upstream_server_error" in raw.headers["x-router-fallback"]
    assert by_model(control) == {"mock-local": 2, "mock-hosted": 1}  # 2 attempts, then fallback


def test_retry_succeeds_on_second_attempt(client: openai.OpenAI, control: httpx.Client) -> None:
    control.post("/_mock/config", json={"fail_status": 503, "fail_first_n": 1})
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=MSG)
    assert raw.headers["x-router-model"] == "mock-local"
    assert by_model(control) == {"mock-local": 2}


@pytest.mark.parametrize(
    ("status", "exc", "expected"),
    [
        (429, openai.RateLimitError, 429),
        (500, openai.InternalServerError, 502),
        (503, openai.InternalServerError, 502),
    ],
)
def test_upstream_errors_once_everything_is_spent(
    client: openai.OpenAI, control: httpx.Client, status: int, exc: type[Exception], expected: int
) -> None:
    control.post("/_mock/config", json={"fail_status": status})
    with pytest.raises(exc) as info:
        client.chat.completions.create(model="auto", messages=MSG)
    assert getattr(info.value, "status_code", None) == expected
    # the target's own fallbacks only, not chained: local (2 tries) -> hosted (2)
    assert by_model(control) == {"mock-local": 2, "mock-hosted": 2}


def test_upstream_timeout_is_504(
    mock: MockUpstreamProcess, control: httpx.Client, tmp_path: Path
) -> None:
    policy = tmp_path / "fast.yaml"
    policy.write_text(
        MOCK_POLICY.read_text()
        .replace("total_s: 10", "total_s: 0.3")
        .replace("prices_file: ../prices.yaml", f"prices_file: {ROOT / 'policies' / 'prices.yaml'}")
    )
    control.post("/_mock/config", json={"hang": True})
    with GatewayProcess(policy, env={"MOCK_UPSTREAM_URL": mock.url}) as gw:
        c = openai.OpenAI(base_url=gw.url, api_key="x", max_retries=0, timeout=30)
        t0 = time.monotonic()
        with pytest.raises(openai.APIStatusError) as info:
            c.chat.completions.create(model="mock-hosted-backup", messages=MSG)
        assert info.value.status_code == 504
        assert time.monotonic() - t0 < 5


def test_stream_cut_midway(client: openai.OpenAI, control: httpx.Client) -> None:
    control.post("/_mock/config", json={"stream_cut_after": 3, "fail_models": []})
    with httpx.Client(base_url=str(client.base_url)) as c:
        r = c.post(
            "chat/completions",
            json={"model": "mock-hosted-backup", "messages": MSG, "stream": True},
        )
    events = [e[6:] for e in r.text.split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert '"stream_interrupted"' in events[-2]
    # the openai client raises on the error event
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="mock-hosted-backup", messages=MSG, stream=True))


def test_keys_and_body_limit(mock: MockUpstreamProcess, tmp_path: Path) -> None:
    policy = tmp_path / "keys.yaml"
    policy.write_text(
        MOCK_POLICY.read_text()
        .replace("auth: none", "auth: keys\nlimits: {max_body_bytes: 1000}")
        .replace("prices_file: ../prices.yaml", f"prices_file: {ROOT / 'policies' / 'prices.yaml'}")
    )
    env = {"MOCK_UPSTREAM_URL": mock.url, "ROUTER_MASTER_KEY": "sk-test-master"}
    with GatewayProcess(policy, env=env) as gw:
        anon = openai.OpenAI(base_url=gw.url, api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            anon.chat.completions.create(model="auto", messages=MSG)
        with httpx.Client(base_url=gw.base_url) as c:
            r = c.post("/v1/chat/completions", json={"model": "auto", "messages": MSG})
            assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
        ok = openai.OpenAI(base_url=gw.url, api_key="sk-test-master", max_retries=0)
        assert ok.chat.completions.create(model="auto", messages=MSG).choices
        big = [{"role": "user", "content": "x" * 2000}]
        with pytest.raises(openai.APIStatusError) as info:
            ok.chat.completions.create(model="auto", messages=big)  # type: ignore[arg-type]
        assert info.value.status_code == 413


def test_hot_reload_good_then_bad(mock: MockUpstreamProcess, tmp_path: Path) -> None:
    policy = tmp_path / "live.yaml"
    text = MOCK_POLICY.read_text().replace(
        "prices_file: ../prices.yaml", f"prices_file: {ROOT / 'policies' / 'prices.yaml'}"
    )
    policy.write_text(text)
    env = {"MOCK_UPSTREAM_URL": mock.url, "ROUTER_POLICY_POLL_S": "0.1"}
    with GatewayProcess(policy, env=env) as gw:
        c = openai.OpenAI(base_url=gw.url, api_key="x", max_retries=0)
        h0 = c.chat.completions.with_raw_response.create(model="auto", messages=MSG).headers
        # good edit: everything goes to the hosted tier
        _rewrite(policy, text.replace("min_score: 0.5", "min_score: 0.0001"))
        h1 = _wait_for_new_policy(c, h0["x-router-policy"])
        assert h1["x-router-model"] == "mock-hosted"
        # bad edit: rejected, the last good policy keeps serving
        _rewrite(policy, text.replace("min_score: 0.5", "min_score: nope"))
        time.sleep(0.6)
        h2 = c.chat.completions.with_raw_response.create(model="auto", messages=MSG).headers
        assert h2["x-router-policy"] == h1["x-router-policy"]
        assert h2["x-router-model"] == "mock-hosted"
        ready = httpx.get(gw.base_url + "/readyz").json()["checks"]["policy"]
        assert ready["failed_reloads"] >= 1 and "min_score" in ready["last_error"]


def _rewrite(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _wait_for_new_policy(c: openai.OpenAI, old: str) -> httpx.Headers:
    for _ in range(100):
        h = c.chat.completions.with_raw_response.create(model="auto", messages=MSG).headers
        if h["x-router-policy"] != old:
            return h
        time.sleep(0.05)
    raise AssertionError("the policy was not reloaded")
