"""A gateway with keys, a ledger and two kinds of upstream for the Messages tests.

``mock-hosted`` is an OpenAI-compatible model on the mock; ``claude-mock`` is a litellm
``anthropic/claude-sonnet-4-5`` model (litellm passes ``thinking`` only to models it knows
reason) whose ``api_base`` is the same mock, which then speaks Anthropic's Messages API natively
(router.testing.mock_messages).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from router.ledger.record import LedgerRecord
from router.redis import keys as lk
from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess
from tests.integration.budget_support import make_key, own_redis

POLICY = """version: 1
auth: keys
classifier: {kind: heuristic}
defaults:
  retry: {attempts: 1, backoff_s: 0.01, max_backoff_s: 0.05}
  timeouts: {connect_s: 2, total_s: 30}
models:
  - name: mock-small
    backend: openai_compat
    tier: local
    endpoint: ${MOCK_UPSTREAM_URL}
    price: {input_usd_per_mtok: 0.05, output_usd_per_mtok: 0.10}
    capabilities: {tools: true, context_window: 64}
  - name: mock-hosted
    backend: openai_compat
    tier: hosted
    endpoint: ${MOCK_UPSTREAM_URL}
    price: {input_usd_per_mtok: 2.5, output_usd_per_mtok: 10.0, cached_input_usd_per_mtok: 1.25}
    capabilities: {tools: true, vision: true, context_window: 128000}
  - name: claude-mock
    backend: litellm
    tier: hosted
    upstream_model: anthropic/claude-sonnet-4-5
    endpoint: ${MOCK_BASE_URL}
    api_key: ${MOCK_ANTHROPIC_KEY}
    price:
      input_usd_per_mtok: 3.0
      output_usd_per_mtok: 15.0
      cached_input_usd_per_mtok: 0.3
      cache_write_usd_per_mtok: 3.75
    capabilities: {tools: true, vision: true, context_window: 200000}
routes:
  - alias: small-only
    tiers:
      - {name: local, model: mock-small}
  - alias: auto
    tiers:
      - {name: local, model: mock-small}
      - {name: hosted, model: mock-hosted, min_score: 0.5}
"""
PRICES_USD_PER_MTOK = {"mock-hosted": (2.5, 10.0), "claude-mock": (3.0, 15.0)}


@dataclass(frozen=True, slots=True)
class Stack:
    """The running processes and a key."""

    gateway: GatewayProcess
    mock: MockUpstreamProcess
    redis_url: str
    secret: str

    def ledger(self) -> list[LedgerRecord]:
        """Every ledger record so far."""
        client = redis.Redis.from_url(self.redis_url, decode_responses=True)
        try:
            rows: Any = client.xrange(lk.stream_key())
        finally:
            client.close()
        return [LedgerRecord.from_fields(f) for _, f in rows]

    def record(self, request_id: str, timeout_s: float = 20.0) -> LedgerRecord:
        """The ledger record of ``request_id`` (records are written asynchronously)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for rec in self.ledger():
                if rec.request_id == request_id:
                    return rec
            time.sleep(0.05)
        raise TimeoutError(f"no ledger record for {request_id}")

    def mock_stats(self) -> dict[str, Any]:
        """The mock's ``/_mock/stats``."""
        out: dict[str, Any] = httpx.get(self.mock.base_url + "/_mock/stats").json()
        return out

    def last_upstream_body(self) -> dict[str, Any]:
        """The body of the last request the mock received."""
        body: dict[str, Any] = self.mock_stats()["last_requests"][-1]["body"]
        return body


@contextlib.contextmanager
def messages_stack(tmp: Path) -> Iterator[Stack]:
    """Redis, the mock and a gateway on :data:`POLICY`, with one virtual key; all stopped after."""
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(own_redis(tmp))
        mock = stack.enter_context(MockUpstreamProcess())
        env = {
            "MOCK_UPSTREAM_URL": mock.url,
            "MOCK_BASE_URL": mock.base_url,
            "MOCK_ANTHROPIC_KEY": "mock-anthropic-key",
            "REDIS_URL": redis_url,
        }
        gw = stack.enter_context(GatewayProcess(policy, env=env, log_path=tmp / "gateway.log"))
        secret, _ = make_key(redis_url, "agents", budget_usd=100.0)
        yield Stack(gw, mock, redis_url, secret)
