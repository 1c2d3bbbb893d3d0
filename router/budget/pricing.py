"""Prices and costs. Costs are exact: US dollars from token counts and per-million prices."""

from __future__ import annotations

from router.backends.local_cost import local_price
from router.policy.schema import ModelSpec, Price
from router.protocol.chat_response import Usage


def cost_usd(price: Price | None, usage: Usage | None) -> float:
    """The cost of ``usage`` at ``price``, in US dollars (0 when either is unknown)."""
    if price is None or usage is None:
        return 0.0
    raw = (
        usage.prompt_tokens * price.input_usd_per_mtok
        + usage.completion_tokens * price.output_usd_per_mtok
    ) / 1_000_000
    return round(raw, 12)


def model_cost_usd(model: ModelSpec, usage: Usage | None) -> float:
    """The cost of ``usage`` on ``model`` at its policy price.

    A local model without a ``price`` is billed at the price derived from its
    ``local.gpu_usd_per_hour`` and its configured throughput (docs/local-models.md), so reports
    show what local inference really costs; with neither, it is free.
    """
    price = model.price
    if price is None and model.backend == "local":
        price = local_price(model)
    return cost_usd(price, usage)
