"""Privacy actions end to end: `router serve` and the mock upstream as real processes.

The mock records every body it receives (``/_mock/stats``); these tests read it to prove that a
redacted or pinned request never carried the client's PII to a hosted model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
EMAIL = "jane.roe@example.com"
CARD = "4111 1111 1111 1111"
SECRET = "sk-proj-abcdefghijklmnopqrstuvwx12"

_TIERS = """    tiers:
      - {name: local, model: mock-local}
      - {name: hosted, model: mock-hosted, min_score: 0.5}
"""
POLICY = f"""
version: 1
auth: none
prices_file: {ROOT / "policies" / "prices.yaml"}
classifier: {{kind: heuristic}}
defaults:
  retry: {{attempts: 1, backoff_s: 0, max_backoff_s: 0}}
  timeouts: {{connect_s: 2, total_s: 10}}
models:
  - name: mock-local
    backend: openai_compat
    tier: local
    endpoint: ${{MOCK_UPSTREAM_URL}}
    capabilities: {{tools: false, json_schema: true, context_window: 8192}}
    fallbacks: [mock-hosted]
  - name: mock-hosted
    backend: openai_compat
    tier: hosted
    endpoint: ${{MOCK_UPSTREAM_URL}}
    capabilities: {{tools: true, json_schema: true, context_window: 128000}}
routes:
  - alias: auto
{_TIERS}  - alias: private
{_TIERS}  - alias: masked
{_TIERS}guard:
  routes:
    auto: {{pii: redact, pii_kinds: {{secret: block}}}}
    private: {{pii: pin-local}}
    masked: {{output: pii}}
"""


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamProcess]:
    with MockUpstreamProcess() as m:
        yield m


@pytest.fixture(scope="module")
def gateway(
    mock: MockUpstreamProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("guard")
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    env = {"MOCK_UPSTREAM_URL": mock.url}
    with GatewayProcess(policy, env=env, log_path=tmp / "gateway.log") as gw:
        yield gw


@pytest.fixture
def control(mock: MockUpstreamProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mock.base_url) as c:
        c.post("/_mock/reset")
        yield c
        c.post("/_mock/config", json={"fail_status": None, "fail_models": []})
        c.post("/_mock/reset")


@pytest.fixture
def gw(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, timeout=30) as c:
        yield c


def chat(gw: httpx.Client, text: str, **extra: Any) -> httpx.Response:
    headers = extra.pop("headers", {})
    body = {"model": "auto", "messages": [{"role": "user", "content": text}], **extra}
    return gw.post("/v1/chat/completions", json=body, headers=headers)


def received(control: httpx.Client) -> list[tuple[str, str]]:
    """(model, body as JSON text) of every request the mock upstream received."""
    stats = control.get("/_mock/stats").json()
    return [(r["body"]["model"], orjson.dumps(r["body"]).decode()) for r in stats["last_requests"]]


def streamed(text: str) -> str:
    out = []
    for block in text.split("\n\n"):
        if block.startswith("data: {"):
            for choice in orjson.loads(block[6:]).get("choices") or []:
                out.append(choice["delta"].get("content") or "")
    return "".join(out)


HOSTED = {"x-router-route": "hosted"}


def test_redact_json_pii_never_reaches_the_hosted_model(
    gw: httpx.Client, control: httpx.Client
) -> None:
    r = chat(gw, f"{EMAIL} pays with {CARD}", headers=HOSTED, user=EMAIL)
    assert r.status_code == 200, r.text
    assert r.headers["x-router-privacy"] == "redacted"
    assert r.headers["x-router-pii"] == "credit_card,email"
    ((model, body),) = received(control)
    assert model == "mock-hosted"
    assert EMAIL not in body and CARD not in body and "[EMAIL_1]" in body
    # the mock echoes the prompt's start: the placeholders come back and are restored
    assert f"{EMAIL} pays with {CARD}" in r.json()["choices"][0]["message"]["content"]


def test_redact_stream(gw: httpx.Client, control: httpx.Client) -> None:
    r = chat(gw, f"{EMAIL} wants the report", headers=HOSTED, stream=True)
    assert r.status_code == 200 and r.headers["x-router-privacy"] == "redacted"
    assert all(EMAIL not in body for _, body in received(control))
    assert f"{EMAIL} wants the report" in streamed(r.text)
    assert r.text.endswith("data: [DONE]\n\n")


def test_block_gives_400_and_nothing_leaves(gw: httpx.Client, control: httpx.Client) -> None:
    r = chat(gw, f"deploy with {SECRET}")
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "pii_blocked" and "secret" in err["message"]
    assert SECRET not in r.text
    assert received(control) == []


def test_pin_local_never_hosted_even_when_local_fails(
    gw: httpx.Client, control: httpx.Client
) -> None:
    r = chat(gw, f"{EMAIL} needs help", model="private", headers=HOSTED)
    assert r.status_code == 200
    assert r.headers["x-router-privacy"] == "pinned-local"
    assert r.headers["x-router-model"] == "mock-local"
    control.post("/_mock/reset")
    control.post("/_mock/config", json={"fail_status": 503, "fail_models": ["mock-local"]})
    failed = chat(gw, f"{EMAIL} needs help", model="private")
    assert failed.status_code >= 500
    assert {m for m, _ in received(control)} == {"mock-local"}  # the hosted fallback was skipped


def test_pin_local_named_hosted_model_is_400(gw: httpx.Client, control: httpx.Client) -> None:
    # a model asked for by name takes the default guard (off): only routes are scoped here
    assert chat(gw, "hello", model="mock-hosted").status_code == 200
    r = chat(gw, f"{EMAIL} again", model="private", tools=[_tool()])
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "privacy_pinned_local"
    assert all(EMAIL not in body for _, body in received(control))


def _tool() -> dict[str, Any]:
    return {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


def test_output_masking_of_hosted_answers(gw: httpx.Client, control: httpx.Client) -> None:
    r = chat(gw, "10.1.2.3 is down again", model="masked", headers=HOSTED)
    assert r.status_code == 200
    assert "10.1.2.3" in received(control)[0][1]  # pii off for this route: sent as is
    content = r.json()["choices"][0]["message"]["content"]
    assert "[MASKED_IP] is down again" in content and "10.1.2.3" not in content
    s = chat(gw, "10.1.2.3 is down again", model="masked", headers=HOSTED, stream=True)
    assert "[MASKED_IP] is down again" in streamed(s.text) and "10.1.2.3" not in s.text


def _cached(gw: httpx.Client, text: str, **extra: Any) -> httpx.Response:
    """Ask until the answer comes from the cache (stores happen in the background)."""
    import time

    for _ in range(50):
        r = chat(gw, text, temperature=0, **extra)
        if r.headers.get("x-router-cache", "").startswith("hit"):
            return r
        time.sleep(0.05)
    return r


def test_cache_entries_never_cross_pii(gw: httpx.Client, control: httpx.Client) -> None:
    first = chat(gw, f"{EMAIL} asks for the invoice", model="private", temperature=0)
    assert first.status_code == 200 and first.headers["x-router-cache"] == "miss"
    again = _cached(gw, f"{EMAIL} asks for the invoice", model="private")
    assert again.headers["x-router-cache"] == "hit-exact"
    assert again.headers["x-router-privacy"] == "pinned-local"  # a replay says so too
    other = chat(gw, "john.smith@example.org asks for the invoice", model="private", temperature=0)
    assert other.headers["x-router-cache"] == "miss"
    assert EMAIL not in other.text
    # the same prompt through the redacting route has its own entry, made by the hosted model
    redacted = chat(gw, f"{EMAIL} asks for the invoice", headers=HOSTED, temperature=0)
    assert redacted.headers["x-router-cache"] == "miss"
    assert redacted.headers["x-router-privacy"] == "redacted"
    assert all(EMAIL not in body for model, body in received(control) if model == "mock-hosted")
