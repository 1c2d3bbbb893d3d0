"""Helpers for the learning-loop gateway tests: a policy, Redis reads and polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import redis

from router.redis import keys as ledger_keys
from router.redis import keys as lk

T = TypeVar("T")
ENDINGS = ("labels", "failed", "unparsed", "skipped_budget", "skipped_busy", "skipped_failed",
           "skipped_no_text")  # fmt: skip
"""The shadow outcome counters that end a job."""
LOCAL_WIRE = "mock-local-tokens-10-tps-5"
"""The local tier's upstream name: 10-word answers, streamed at 5 words a second (2 s)."""
HOSTED_WIRE = "mock-hosted-tokens-24"
"""The hosted tier's: 24-word answers (longer than the local tier's)."""


def write_policy(path: Path, learning: str, classifier: str = "{kind: heuristic}") -> Path:
    """A two-tier mock policy with a PII guard (pin local) and the given ``learning:`` body."""
    path.write_text(
        f"""
version: 1
auth: none
classifier: {classifier}
defaults:
  retry: {{attempts: 1, backoff_s: 0.01, max_backoff_s: 0.05}}
  timeouts: {{connect_s: 2, total_s: 20}}
observability:
  feedback: {{store_prompts: true}}
guard: {{pii: pin-local}}
models:
  - name: mock-local
    backend: openai_compat
    tier: local
    endpoint: ${{MOCK_UPSTREAM_URL}}
    upstream_model: {LOCAL_WIRE}
    price: {{input_usd_per_mtok: 0.05, output_usd_per_mtok: 0.10}}
  - name: mock-hosted
    backend: openai_compat
    tier: hosted
    endpoint: ${{MOCK_UPSTREAM_URL}}
    upstream_model: {HOSTED_WIRE}
    price: {{input_usd_per_mtok: 2.5, output_usd_per_mtok: 10.0}}
routes:
  - alias: auto
    tiers:
      - {{name: local, model: mock-local}}
      - {{name: hosted, model: mock-hosted, min_score: 0.5}}
learning: {learning}
""",
        encoding="utf-8",
    )
    return path


def wait_for(check: Callable[[], T | None], timeout_s: float = 30.0, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy (a deadline, not a speed assumption)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


def labels(r: redis.Redis) -> list[dict[str, str]]:
    """Every shadow label in the store."""
    rows: Any = r.xrange(lk.labels_key())
    return [fields for _id, fields in rows]


def stats(r: redis.Redis) -> dict[str, int]:
    """Today's shadow outcome counters."""
    raw: dict[str, str] = r.hgetall(lk.stats_key())  # type: ignore[assignment]
    return {k: int(v) for k, v in raw.items()}


def resolved(r: redis.Redis) -> int:
    """Shadow jobs that finished one way or another."""
    s = stats(r)
    return sum(s.get(k, 0) for k in ENDINGS)


def ledger_rows(r: redis.Redis) -> list[dict[str, str]]:
    """Every ledger record."""
    rows: Any = r.xrange(ledger_keys.stream_key())
    return [fields for _id, fields in rows]


def mock_stats(mock_url: str) -> dict[str, Any]:
    """The mock upstream's ``/_mock/stats``."""
    base = mock_url.removesuffix("/v1")
    out: dict[str, Any] = httpx.get(base + "/_mock/stats").json()
    return out


def set_judge(mock_url: str, rules: dict[str, str]) -> None:
    """Script the mock's judge (``MockConfig.judge``)."""
    base = mock_url.removesuffix("/v1")
    r = httpx.post(base + "/_mock/config", json={"judge": rules, "history_size": 1000})
    r.raise_for_status()


def chat(base_url: str, prompt: str, **extra: Any) -> httpx.Response:
    """One non-streamed ``auto`` request."""
    body = {"model": "auto", "messages": [{"role": "user", "content": prompt}], **extra}
    return httpx.post(base_url + "/v1/chat/completions", json=body, timeout=30)


def content(r: httpx.Response) -> str:
    """The first choice's text."""
    text: str = orjson.loads(r.content)["choices"][0]["message"]["content"]
    return text
