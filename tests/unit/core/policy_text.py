"""A small policy used by the core unit tests."""

from __future__ import annotations

from pathlib import Path

POLICY = """
version: 1
auth: none
prices_file: prices.yaml
limits: {max_body_bytes: 2000}
defaults:
  retry: {attempts: 2, backoff_s: 0, max_backoff_s: 0}
models:
  - name: small
    backend: openai_compat
    tier: local
    endpoint: http://127.0.0.1:9/v1
    capabilities: {tools: false, json_schema: false, context_window: 1000}
    fallbacks: [big]
  - name: big
    backend: openai_compat
    tier: hosted
    endpoint: http://127.0.0.1:9/v1
    api_key: ${BIG_KEY:-test-secret}
    capabilities: {tools: true, json_schema: true, vision: true, context_window: 100000}
    fallbacks: [backup]
  - name: backup
    backend: openai_compat
    endpoint: http://127.0.0.1:9/v1
    price: {input_usd_per_mtok: 3, output_usd_per_mtok: 15}
    capabilities: {tools: true, json_schema: true, vision: true, context_window: 100000}
routes:
  - alias: auto
    tiers:
      - {name: local, model: small}
      - {name: mid, model: big, min_score: 0.5}
      - {name: hosted, model: backup, min_score: 0.8}
    rules:
      - when: {hint: [quality]}
        use: hosted
      - when: {team: [research]}
        use: big
  - alias: locked
    allow_override: false
    tiers:
      - {name: local, model: small}
"""

PRICES = """
prices:
  small: {input_usd_per_mtok: 0.1, output_usd_per_mtok: 0.2}
  big: {input_usd_per_mtok: 1, output_usd_per_mtok: 4}
"""


def write_policy(tmp: Path, policy: str = POLICY, prices: str = PRICES) -> Path:
    """Write the policy and its prices file into ``tmp``; return the policy's path."""
    (tmp / "prices.yaml").write_text(prices)
    path = tmp / "policy.yaml"
    path.write_text(policy)
    return path
