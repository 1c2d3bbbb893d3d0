"""The pipeline's hooks into budgets and the ledger (stages 10 and 11).

:func:`account` runs inside ``pipeline.record`` (once per request): it builds the record and
hands it, with the reservation, to :class:`router.ledger.writer.Ledger`. :func:`bill_after_
disconnect` is what the stream relay calls instead of ``record`` when the client went away
before the upstream's usage arrived: it drains the upstream in the background, then records.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import structlog

from router.budget.pricing import model_cost_usd
from router.ledger.drain import UpstreamReader, estimated_usage
from router.ledger.outcome import Finished, record_of
from router.policy.schema import ModelSpec
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk
from router.route.capabilities import estimate_prompt_tokens

if TYPE_CHECKING:
    from router.services import Services

log = structlog.get_logger("router.ledger")
CLIENT_CLOSED = 499
"""Status recorded for a request whose client disconnected (nginx's convention)."""


def account(services: Services, req: ChatRequest, outcome: Finished) -> None:
    """Settle the request's reservation and write its ledger record (in the background)."""
    ledger = services.ledger
    if ledger is None:
        return
    cache = str(getattr(outcome, "cache_status", None) or "miss").removeprefix("hit-")
    try:
        rec = record_of(outcome, req.stream, cache)
    except Exception as exc:  # accounting must never fail a response
        services.counters["ledger_errors"] += 1
        log.error("ledger_record_failed", error=repr(exc), exc_info=exc)
        return
    ledger.finish(rec, outcome.hold)


def bill_after_disconnect(
    services: Services,
    req: ChatRequest,
    outcome: Any,
    rest: AsyncIterator[Chunk],
    answered: ModelSpec,
    record: Callable[..., None],
) -> None:
    """Read the rest of the upstream stream in the background, then record the request.

    The upstream's usage chunk bills it exactly; without one (the upstream failed too, or took
    longer than the model's ``total_s`` timeout) the usage is estimated and flagged.
    """
    timeout_s = services.policies.current.policy.timeouts_for(answered).total_s

    async def drain() -> None:
        reader = rest if isinstance(rest, UpstreamReader) else None
        usage = await reader.detach(timeout_s) if reader is not None else None
        if reader is None:
            aclose = getattr(rest, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception as exc:
                    log.debug("stream_close_failed", error=repr(exc))
        if usage is None:
            usage = estimated_usage(estimate_prompt_tokens(req), reader, 0)
        outcome.usage = usage
        outcome.cost_usd = model_cost_usd(answered, usage)
        outcome.status = CLIENT_CLOSED
        outcome.error_code = "client_disconnected"
        record(services, req, outcome, None)

    if services.ledger is not None:
        services.ledger.spawn(drain())
    else:  # nothing to bill into: record what is known now
        outcome.status = CLIENT_CLOSED
        outcome.error_code = "client_disconnected"
        record(services, req, outcome, None)
