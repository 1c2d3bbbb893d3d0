"""The local tier through the gateway: a tiny random-weight model, JSON and streaming."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess
from tests.unit.backends.tiny_llama import build_tiny_llama

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_local_tier_answers_json_and_stream(tmp_path: Path) -> None:
    model_dir = build_tiny_llama(tmp_path / "tiny")
    policy = tmp_path / "local.yaml"
    policy.write_text(f"""
version: 1
prices_file: {ROOT / "policies" / "prices.yaml"}
classifier: {{kind: heuristic}}
models:
  - name: tiny-local
    backend: local
    tier: local
    capabilities: {{tools: false, json_schema: false, context_window: 512}}
    local: {{source: "{model_dir}", max_new_tokens: 8, device: cpu}}
  - name: mock-hosted
    backend: openai_compat
    tier: hosted
    endpoint: ${{MOCK_UPSTREAM_URL}}
routes:
  - alias: auto
    tiers:
      - {{name: local, model: tiny-local}}
      - {{name: hosted, model: mock-hosted, min_score: 0.5}}
""")
    with (
        MockUpstreamProcess() as mock,
        GatewayProcess(policy, env={"MOCK_UPSTREAM_URL": mock.url}, startup_timeout_s=120) as gw,
    ):
        client = openai.OpenAI(base_url=gw.url, api_key="x", max_retries=0)
        msgs: list[openai.types.chat.ChatCompletionMessageParam] = [
            {"role": "user", "content": "hi"}
        ]
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=msgs, max_tokens=5, extra_headers={"x-router-route": "local"}
        )
        resp = raw.parse()
        assert raw.headers["x-router-model"] == "tiny-local"
        assert resp.usage is not None and 1 <= resp.usage.completion_tokens <= 5
        chunks = list(
            client.chat.completions.create(
                model="auto",
                messages=msgs,
                max_tokens=5,
                stream=True,
                stream_options={"include_usage": True},
                extra_headers={"x-router-route": "local"},
            )
        )
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
        assert any(c.choices and c.choices[0].finish_reason for c in chunks)
