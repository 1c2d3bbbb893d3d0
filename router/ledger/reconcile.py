"""Correct the charge of reclaimed holds with what the provider actually billed.

A hold whose replica died was charged at its reserved amount, with a ``reclaimed`` ledger row
(see :mod:`router.ledger.replay`). When the provider's usage report (or a person) says what the
call really cost, :func:`reconcile` corrects both books once:

* the budget counters, by ``actual - reserved`` in every scope the hold was held against
  (the ``RECONCILE`` script; a second reconciliation of the same hold changes nothing);
* the ledger, with an adjustment row of ``cost_usd = actual - reserved`` (``error:
  reconciled``, write id ``<hold id>:reconcile``, so a replay writes it once).

The ledger's sum and the counters keep agreeing; reports show reclaimed spend (net of its
adjustments) apart from the rest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import orjson

from router.budget.reserve import Budgets
from router.budget.scripts import RECONCILE
from router.ledger.record import RECONCILED
from router.ledger.replay import reclaimed_record
from router.ledger.spool import SpoolEntry
from router.ledger.writer import Ledger, append_command
from router.redis import keys as bk


@dataclass(frozen=True, slots=True)
class Reclaimed:
    """A reclaimed hold whose row is written and not yet reconciled."""

    hold_id: str
    request_id: str
    key_id: str | None
    team: str | None
    model: str
    charged_usd: float
    detail: str


async def pending(budgets: Budgets) -> list[Reclaimed]:
    """Every reclaimed hold that can still be reconciled (kept 40 days)."""
    raw: dict[str, str] = await budgets.redis.hgetall(bk.reclaimed_rows_key())
    out = []
    for rid, detail in raw.items():
        rec = reclaimed_record(rid, detail)
        out.append(Reclaimed(rid, rec.request_id, rec.key_id, rec.team, rec.model,
                             rec.cost_usd, detail))  # fmt: skip
    return sorted(out, key=lambda r: r.request_id)


async def reconcile(
    ledger: Ledger,
    request_id: str,
    actual_usd: float,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    note: str = "",
) -> dict[str, Any]:
    """Correct the reclaimed hold of ``request_id`` (or of that hold id) to ``actual_usd``.

    Returns ``{"request_id", "charged_usd", "actual_usd", "adjustment_usd"}``; raises
    ``LookupError`` when no reclaimed hold of that id is waiting.
    """
    budgets = ledger.budgets
    match = [r for r in await pending(budgets) if request_id in (r.request_id, r.hold_id)]
    if not match:
        raise LookupError(f"no reclaimed hold waits for reconciliation under {request_id!r}")
    held = match[0]
    keys = [bk.reclaimed_rows_key()]
    done, amount_nano = await budgets.eval_script(
        "reconcile", RECONCILE, keys, [held.hold_id, bk.to_nano(actual_usd)]
    )
    if not int(done):
        raise LookupError(f"the hold of {request_id!r} was reconciled meanwhile")
    adjustment = bk.from_nano(bk.to_nano(actual_usd) - int(amount_nano))
    base = reclaimed_record(held.hold_id, held.detail)
    reason = f"reconciled: provider usage ${actual_usd:.9f} for a hold charged "
    reason += f"${bk.from_nano(int(amount_nano)):.9f}" + (f" ({note})" if note else "")
    row = dataclasses.replace(
        base,
        reason=reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=adjustment,
        error=RECONCILED,
    )
    write_id = f"{held.hold_id}:reconcile"
    entry = SpoolEntry(write_id, row.request_id, [append_command(row, write_id, reclaimed=True)])
    await ledger.write_entries([entry])
    return {
        "request_id": held.request_id,
        "charged_usd": bk.from_nano(int(amount_nano)),
        "actual_usd": actual_usd,
        "adjustment_usd": adjustment,
    }


def parse_usage_line(line: bytes) -> tuple[str, float, int, int]:
    """A provider usage line: ``{"request_id", "cost_usd", "prompt_tokens"?,
    "completion_tokens"?}`` -> its fields."""
    d = orjson.loads(line)
    return (
        str(d["request_id"]),
        float(d["cost_usd"]),
        int(d.get("prompt_tokens", 0)),
        int(d.get("completion_tokens", 0)),
    )
