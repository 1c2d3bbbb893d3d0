"""Prices and costs. Costs are exact: US dollars from token counts and per-million prices."""

from __future__ import annotations

from router.backends.local_cost import local_price
from router.policy.schema import ModelSpec, Price
from router.protocol.chat_response import Usage


def cost_usd(price: Price | None, usage: Usage | None) -> float:
    """The cost of ``usage`` at ``price``, in US dollars (0 when either is unknown)."""
    if price is None or usage is None:
        return 0.0
    # cached reads and writes are part of prompt_tokens, each at its own rate when priced
    read, write = usage.cache_read_tokens, usage.cache_write_tokens
    fresh = max(usage.prompt_tokens - read - write, 0)
    read_price = price.cached_input_usd_per_mtok
    write_price = price.cache_write_usd_per_mtok
    raw = (
        fresh * price.input_usd_per_mtok
        + read * (price.input_usd_per_mtok if read_price is None else read_price)
        + write * (price.input_usd_per_mtok if write_price is None else write_price)
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
