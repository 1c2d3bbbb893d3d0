"""The ledger record: one per request, whatever happened to it."""

from __future__ import annotations

import time
from dataclasses import MISSING, dataclass, fields
from typing import Any

RECLAIMED = "reclaimed"
"""The ``error`` of a row written for a dead replica's hold (see router.ledger.replay)."""
RECONCILED = "reconciled"
"""The ``error`` of an adjustment row of ``router ledger reconcile`` (not a request)."""


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """What a request did and cost. Money in US dollars, time in Unix seconds / milliseconds."""

    ts: float
    """When the request arrived (Unix seconds, UTC)."""
    request_id: str
    tenant: str
    key_id: str | None
    team: str | None
    route: str | None
    tier: str | None
    reason: str
    """The routing decision's reason (e.g. ``score 0.71 >= 0.50 (tier hosted)``)."""
    score: float | None
    model: str
    """The policy name of the model that answered (or was last tried)."""
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    """True when tokens were estimated by the gateway, not reported by the upstream."""
    cost_usd: float
    counterfactual_usd: float
    """What the same tokens would have cost on the route's strongest tier."""
    cache: str
    """``miss``, ``exact``, ``semantic`` or ``bypass``."""
    latency_ms: float
    policy_hash: str
    status: int
    error: str | None
    stream: bool
    fallback: bool
    """Whether a fallback model answered."""
    unmetered: bool = False
    """Served under ``fail_open`` while Redis was unreachable: its spend reached the budget
    counters only once Redis was back (reports show such spend apart)."""
    cache_read_tokens: int = 0
    """Prompt tokens the provider read from its prompt cache (within ``prompt_tokens``)."""
    cache_write_tokens: int = 0
    """Prompt tokens the provider wrote to its prompt cache (within ``prompt_tokens``)."""

    @property
    def day(self) -> str:
        """``YYYYMMDD`` (UTC) of :attr:`ts`."""
        return time.strftime("%Y%m%d", time.gmtime(self.ts))

    def to_fields(self) -> dict[str, str]:
        """Stream entry fields (strings; None as empty)."""
        out: dict[str, str] = {}
        for k in COLUMNS:
            v = getattr(self, k)
            if v is None:
                out[k] = ""
            elif isinstance(v, bool):
                out[k] = "1" if v else "0"
            else:
                out[k] = repr(v) if isinstance(v, float) else str(v)
        return out

    @classmethod
    def from_fields(cls, f: dict[str, str]) -> LedgerRecord:
        """Parse a stream entry written by :meth:`to_fields`."""
        values: dict[str, Any] = {}
        for fd in fields(cls):
            raw = f.get(fd.name, "")
            kind = str(fd.type)
            if raw == "" and fd.name not in f and fd.default is not MISSING:
                values[fd.name] = fd.default  # a record written before the column existed
            elif kind == "bool":
                values[fd.name] = raw == "1"
            elif raw == "" and "None" in kind:
                values[fd.name] = None
            elif kind.startswith("int"):
                values[fd.name] = int(raw)
            elif kind.startswith("float"):
                values[fd.name] = float(raw)
            else:
                values[fd.name] = raw
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (export)."""
        return {k: getattr(self, k) for k in COLUMNS}


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(LedgerRecord))
"""Column order of exports."""
