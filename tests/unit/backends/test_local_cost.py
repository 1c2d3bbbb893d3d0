"""Local prices: given, or derived from the machine's hourly cost and measured throughput."""

from __future__ import annotations

import pytest

from router.backends.local_cost import derived_price, local_price, usd_per_mtok
from router.policy.schema import ModelSpec, Price
from router.policy.sections.local_model import LocalModelSettings


def spec(**fields: object) -> ModelSpec:
    return ModelSpec.model_validate({"name": "small", "backend": "local", **fields})


def test_usd_per_mtok_is_machine_seconds_per_million_tokens() -> None:
    assert usd_per_mtok(3.6, 1000.0) == pytest.approx(1.0)
    assert usd_per_mtok(2.5, 2000.0) == pytest.approx(0.3472, abs=1e-4)
    with pytest.raises(ValueError):
        usd_per_mtok(1.0, 0.0)


def test_configured_throughputs_give_separate_input_and_output_prices() -> None:
    settings = LocalModelSettings(
        source="s", gpu_usd_per_hour=3.6, output_tokens_per_s=1000, input_tokens_per_s=10000
    )
    price = derived_price(settings)
    assert price is not None
    assert price.output_usd_per_mtok == pytest.approx(1.0)
    assert price.input_usd_per_mtok == pytest.approx(0.1)


def test_measured_throughput_fills_in_and_input_defaults_to_output() -> None:
    settings = LocalModelSettings(source="s", gpu_usd_per_hour=3.6)
    assert derived_price(settings) is None
    price = derived_price(settings, measured_output_tokens_per_s=500.0)
    assert price is not None
    assert price.input_usd_per_mtok == price.output_usd_per_mtok == pytest.approx(2.0)


def test_a_given_price_wins_and_no_hourly_cost_means_no_price() -> None:
    given = spec(
        price={"input_usd_per_mtok": 0.01, "output_usd_per_mtok": 0.02},
        local={"source": "s", "gpu_usd_per_hour": 9.0, "output_tokens_per_s": 10},
    )
    assert local_price(given) == Price(input_usd_per_mtok=0.01, output_usd_per_mtok=0.02)
    assert local_price(spec(local={"source": "s"})) is None
    assert local_price(spec()) is None
    derived = local_price(
        spec(local={"source": "s", "gpu_usd_per_hour": 3.6}), measured_output_tokens_per_s=1000
    )
    assert derived is not None and derived.output_usd_per_mtok == pytest.approx(1.0)
