"""Every Redis key of the ledger, in one place.

All carry the hash tag ``{ledger}``: one stream keeps records in time order for exports, and
its rollups live in the same slot so a record and its rollups are written in one transaction on
Redis Cluster too.

=========================================  ====================================================
``rl:{ledger}:stream``                     stream: one entry per request (see
                                           :class:`router.ledger.record.LedgerRecord`);
                                           entry ids are Unix ms, so ``XRANGE`` by time
``rl:{ledger}:r:<YYYYMMDD>:<team>``        hash: ``<model>|<metric>`` -> integer; metrics are
                                           ``requests``, ``errors``, ``cache_hits``,
                                           ``prompt_tokens``, ``completion_tokens``,
                                           ``cost_nusd`` and ``counterfactual_nusd``
                                           (nano-dollars, 1e-9 USD, exact sums)
``rl:{ledger}:days``                       set of ``YYYYMMDD`` that have rollups
``rl:{ledger}:teams:<YYYYMMDD>``           set of teams with a rollup that day
``rl:{ledger}:ids:<YYYYMMDD>``             set of write ids of that day's records (8 days):
                                           the ledger script refuses a second row for one id
=========================================  ====================================================

Teams without a key (``auth: none``) are recorded as ``-``.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "rl:{ledger}"
NO_TEAM = "-"
METRICS = (
    "requests",
    "errors",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
    "cost_nusd",
    "counterfactual_nusd",
    "unmetered_nusd",
    "reclaimed_nusd",
)
"""``unmetered_nusd``: cost served under ``fail_open`` while Redis was unreachable (added to the
budget counters only once Redis was back); ``reclaimed_nusd``: holds of dead replicas charged
at their reserved amount (``reclaimed`` rows)."""
IDS_TTL_S = 8 * 86400
"""How long a day's write ids are kept: a spool replayed later than this could duplicate."""
_PLAIN = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


def team_part(team: str | None) -> str:
    """``team`` as used in key names: itself when plain, else a digest; ``-`` for none."""
    if not team:
        return NO_TEAM
    if _PLAIN.match(team):
        return team
    return "h-" + hashlib.blake2b(team.encode(), digest_size=10).hexdigest()


def stream_key() -> str:
    """The ledger stream."""
    return f"{PREFIX}:stream"


def rollup_key(day: str, team: str | None) -> str:
    """The rollup hash of ``day`` (``YYYYMMDD``, UTC) and ``team``."""
    return f"{PREFIX}:r:{day}:{team_part(team)}"


def days_key() -> str:
    """The set of days with rollups."""
    return f"{PREFIX}:days"


def teams_key(day: str) -> str:
    """The set of teams with a rollup on ``day``."""
    return f"{PREFIX}:teams:{day}"


def ids_key(day: str) -> str:
    """The set of write ids of the records of ``day`` (idempotent appends)."""
    return f"{PREFIX}:ids:{day}"


def rollup_field(model: str, metric: str) -> str:
    """The rollup hash field of ``metric`` for ``model``."""
    return f"{model}|{metric}"
