"""The context-window gate with a local model's own tokenizer, on a `router serve` process: a
tiny random-weight Llama (its byte-level BPE trained at test time on four sentences, so unseen
text costs about a token a byte) with a 64-token window. The 4-characters-a-token estimate
would let the prompt through; its tokenizer says it does not fit."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess
from tests.unit.backends.tiny_llama import build_tiny_llama

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PROMPT = "zqxj " * 20  # 100 characters: 29 tokens by the estimate, over 100 by the tokenizer


def test_the_local_tokenizer_refuses_and_the_route_skips_the_tier(tmp_path: Path) -> None:
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
    capabilities: {{tools: false, json_schema: false, context_window: 64}}
    local: {{source: "{model_dir}", max_new_tokens: 4, device: cpu}}
  - name: mock-hosted
    backend: openai_compat
    tier: hosted
    endpoint: ${{MOCK_UPSTREAM_URL}}
routes:
  - alias: auto
    tiers:
      - {{name: local, model: tiny-local}}
      - {{name: hosted, model: mock-hosted, min_score: 0.9}}
""")
    with (
        MockUpstreamProcess() as mock,
        GatewayProcess(policy, env={"MOCK_UPSTREAM_URL": mock.url}, startup_timeout_s=120) as gw,
    ):
        client = openai.OpenAI(base_url=gw.url, api_key="x", max_retries=0)
        short = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
        assert short.headers["x-router-model"] == "tiny-local"
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(
                model="tiny-local", messages=[{"role": "user", "content": PROMPT}], max_tokens=4
            )
        body = err.value.body
        assert isinstance(body, dict) and body["code"] == "context_length_exceeded"
        # refused by the planner (nothing reached the model) with an exact count
        assert "the largest context window here is 64 tokens" in body["message"]
        assert "needs about" not in body["message"]
        routed = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": PROMPT}], max_tokens=4
        )
        assert routed.headers["x-router-model"] == "mock-hosted"  # the local tier was skipped
