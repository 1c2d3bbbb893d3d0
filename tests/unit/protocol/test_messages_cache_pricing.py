"""Prompt-cache accounting: cached reads and writes read from usage and priced at their rates."""

from __future__ import annotations

import pytest

from router.budget.pricing import cost_usd
from router.ledger.record import LedgerRecord
from router.policy.load import bundled_price
from router.policy.schema import Price
from router.protocol.chat_response import Usage

ANTHROPIC_LIKE = Price(
    input_usd_per_mtok=3.0,
    output_usd_per_mtok=15.0,
    cached_input_usd_per_mtok=0.3,
    cache_write_usd_per_mtok=3.75,
)


def test_openai_cached_tokens() -> None:
    usage = Usage.from_openai(
        {
            "prompt_tokens": 2000,
            "completion_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 1536},
        }
    )
    assert usage == Usage(2000, 10, cache_read_tokens=1536)


def test_litellm_anthropic_usage_reads_and_writes() -> None:
    # litellm's shape for Anthropic: prompt_tokens include reads and writes
    usage = Usage.from_openai(
        {
            "prompt_tokens": 1200,
            "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 900, "cache_creation_tokens": 250},
            "cache_read_input_tokens": 900,
            "cache_creation_input_tokens": 250,
        }
    )
    assert usage == Usage(1200, 7, cache_read_tokens=900, cache_write_tokens=250)


def test_counts_beyond_the_prompt_are_clamped() -> None:
    usage = Usage.from_openai(
        {
            "prompt_tokens": 10,
            "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": 99},
        }
    )
    assert usage is not None and usage.cache_read_tokens == 10


def test_reads_and_writes_at_their_prices() -> None:
    usage = Usage(1200, 7, cache_read_tokens=900, cache_write_tokens=250)
    expected = (50 * 3.0 + 900 * 0.3 + 250 * 3.75 + 7 * 15.0) / 1_000_000
    assert cost_usd(ANTHROPIC_LIKE, usage) == pytest.approx(expected, abs=1e-12)


def test_unpriced_cache_falls_back_to_the_input_price() -> None:
    price = Price(input_usd_per_mtok=2.0, output_usd_per_mtok=8.0)
    usage = Usage(1000, 0, cache_read_tokens=600, cache_write_tokens=100)
    assert cost_usd(price, usage) == pytest.approx(1000 * 2.0 / 1_000_000)


def test_bundled_price_carries_litellms_cache_prices() -> None:
    price = bundled_price("claude-haiku-4-5")
    assert price is not None
    assert price["cached_input_usd_per_mtok"] < price["input_usd_per_mtok"]
    assert price["cache_write_usd_per_mtok"] > price["input_usd_per_mtok"]


def test_ledger_record_keeps_cache_counts_and_reads_old_rows() -> None:
    rec = LedgerRecord(
        ts=1.0, request_id="r", tenant="t", key_id=None, team=None, route=None, tier=None,
        reason="", score=None, model="m", prompt_tokens=10, completion_tokens=1,
        estimated=False, cost_usd=0.0, counterfactual_usd=0.0, cache="miss", latency_ms=1.0,
        policy_hash="h", status=200, error=None, stream=False, fallback=False,
        cache_read_tokens=6, cache_write_tokens=2,
    )  # fmt: skip
    fields = rec.to_fields()
    assert LedgerRecord.from_fields(fields) == rec
    old = {k: v for k, v in fields.items() if not k.startswith("cache_")} | {"cache": "miss"}
    assert LedgerRecord.from_fields(old).cache_read_tokens == 0
