"""What a token from a local model costs.

A local model's policy entry may give its ``price`` per million tokens like any hosted model.
When it does not, the price is derived from what the machine costs and how fast it works::

    usd_per_mtok = gpu_usd_per_hour / 3600 / tokens_per_s * 1_000_000

Output tokens use the decode throughput (``local.output_tokens_per_s``), input tokens the prompt
(prefill) throughput (``local.input_tokens_per_s``). A request then costs the machine time it
used: ``prompt_tokens / input_tokens_per_s + completion_tokens / output_tokens_per_s`` seconds at
``gpu_usd_per_hour``. Give the throughputs that ``loadtests/bench_local_model.py`` measured at the
model's ``max_concurrency`` (aggregate over the concurrent streams). When a throughput is not
given, the backend's live measurement (:class:`router.backends.local.LocalStats`, one stream's
rate, so an upper bound on the price when several run at once) is used; when the input
throughput is unknown, input tokens are priced like output tokens (again an upper bound).

Example: an H100 at 2.50 USD/h decoding 2,000 tokens/s in aggregate costs
2.50 / 3600 / 2000 * 1e6 = 0.35 USD per million output tokens.
"""

from __future__ import annotations

from router.policy.schema import ModelSpec, Price
from router.policy.sections.local_model import LocalModelSettings

SECONDS_PER_HOUR = 3600.0
TOKENS_PER_MTOK = 1_000_000.0


def usd_per_mtok(usd_per_hour: float, tokens_per_s: float) -> float:
    """Price of a million tokens on a machine costing ``usd_per_hour`` that processes
    ``tokens_per_s``."""
    if tokens_per_s <= 0:
        raise ValueError("tokens_per_s must be positive")
    return usd_per_hour / SECONDS_PER_HOUR / tokens_per_s * TOKENS_PER_MTOK


def derived_price(
    settings: LocalModelSettings,
    *,
    measured_output_tokens_per_s: float | None = None,
    measured_input_tokens_per_s: float | None = None,
) -> Price | None:
    """The price implied by ``gpu_usd_per_hour`` and the throughputs (configured ones first,
    then measured ones); None when the hourly cost or every throughput is unknown."""
    if settings.gpu_usd_per_hour is None:
        return None
    out_tps = settings.output_tokens_per_s or measured_output_tokens_per_s
    if not out_tps:
        return None
    in_tps = settings.input_tokens_per_s or measured_input_tokens_per_s or out_tps
    return Price(
        input_usd_per_mtok=usd_per_mtok(settings.gpu_usd_per_hour, in_tps),
        output_usd_per_mtok=usd_per_mtok(settings.gpu_usd_per_hour, out_tps),
    )


def local_price(
    spec: ModelSpec,
    *,
    measured_output_tokens_per_s: float | None = None,
    measured_input_tokens_per_s: float | None = None,
) -> Price | None:
    """The price to bill ``spec`` at: its policy ``price`` when given, else the derived one,
    else None (the caller's rule for unpriced models applies, e.g. free)."""
    if spec.price is not None:
        return spec.price
    if spec.local is None:
        return None
    return derived_price(
        spec.local,
        measured_output_tokens_per_s=measured_output_tokens_per_s,
        measured_input_tokens_per_s=measured_input_tokens_per_s,
    )
