"""Every Redis key of budgets and rate limits, in one place.

All of them carry the one hash tag ``{budget}``. The reserve script checks and changes the key,
team and global scopes *and* the rate-limit counters in one atomic step; on Redis Cluster a
script may only touch keys of one slot, so one tag for all of them is what keeps "never
overshoot" true there. The price is that budget traffic lands on one shard: each request costs
two small script calls there (reserve, settle), tens of thousands per second on one core.
Per-scope scripts with compensation would spread the load but can overshoot transiently.

===========================================  ==================================================
``rb:{budget}:s:<scope>:<window>``           hash: ``spent`` and ``reserved`` (integer
                                             nano-dollars, 1e-9 USD), ``alerted`` (soft limit
                                             already announced); expires after its window
``rb:{budget}:rl:<scope>:<minute>``          hash: ``req`` and ``tok`` of one UTC minute
                                             (expires after 120 s)
``rb:{budget}:res``                          hash: reservation id -> its detail (amount, tokens,
                                             the scope keys it holds)
``rb:{budget}:exp``                          sorted set: reservation id -> expiry (Unix ms);
                                             the scripts reclaim expired ones (dead workers)
``rb:{budget}:reclaimed``                    hash: reclaimed reservation id -> its detail and
                                             the reclaim time (charged, row not yet written)
``rb:{budget}:reclaiming``                   hash: the same, claimed by a gateway writing the
                                             ``reclaimed`` ledger row
``rb:{budget}:reclaimed_rows``               hash: the same, row written (kept 40 days for
                                             ``router ledger reconcile``)
``rb:{budget}:charged``                      hash: ids of ``fail_open`` spend already added to
                                             the counters (replays add it once)
===========================================  ==================================================

``<scope>`` is ``k:<key id>``, ``t:<team>`` or ``g`` (global); ``<window>`` is ``d20261123``,
``w2026-48``, ``m202611`` or ``total``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

PREFIX = "rb:{budget}"
NANO_PER_USD = 1_000_000_000
"""Budget counters are integers in nano-dollars: exact sums, no float drift in Lua."""
_PLAIN = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_WINDOW_TTL_S = {"day": 2 * 86400, "week": 8 * 86400, "month": 32 * 86400, "total": 0}


def scope_name(kind: str, name: str = "") -> str:
    """``k:<id>``, ``t:<team>`` or ``g``; odd names are replaced by a digest (no ``,``/tabs)."""
    if kind == "g":
        return "g"
    if _PLAIN.match(name):
        return f"{kind}:{name}"
    return f"{kind}:h-" + hashlib.blake2b(name.encode(), digest_size=10).hexdigest()


def window_id(window: str, now: datetime | None = None) -> str:
    """The id of the ``window`` (day, week, month, total) that contains ``now`` (UTC)."""
    t = (now or datetime.now(UTC)).astimezone(UTC)
    if window == "day":
        return t.strftime("d%Y%m%d")
    if window == "week":
        year, week, _ = t.isocalendar()
        return f"w{year}-{week:02d}"
    if window == "month":
        return t.strftime("m%Y%m")
    return "total"


def window_ttl_s(window: str) -> int:
    """Seconds a window's counters are kept (0: forever)."""
    return _WINDOW_TTL_S[window]


def scope_key(scope: str, window: str, now: datetime | None = None) -> str:
    """The spend hash of ``scope`` for the current ``window``."""
    return f"{PREFIX}:s:{scope}:{window_id(window, now)}"


def ratelimit_key(scope: str, now_s: float) -> str:
    """The counter hash of ``scope`` for the UTC minute containing ``now_s`` (Unix seconds)."""
    return f"{PREFIX}:rl:{scope}:{int(now_s // 60)}"


def reservations_key() -> str:
    """The hash of open reservations."""
    return f"{PREFIX}:res"


def expiry_key() -> str:
    """The sorted set of open reservations by expiry (Unix ms)."""
    return f"{PREFIX}:exp"


def reclaimed_key() -> str:
    """The hash of reclaimed reservations whose ledger row is not written yet."""
    return f"{PREFIX}:reclaimed"


def reclaiming_key() -> str:
    """The hash of reclaimed reservations a gateway is writing rows for."""
    return f"{PREFIX}:reclaiming"


def reclaimed_rows_key() -> str:
    """The hash of reclaimed holds whose ``reclaimed`` row is written (for reconciliation)."""
    return f"{PREFIX}:reclaimed_rows"


def charged_key() -> str:
    """The hash of ``fail_open`` reservation ids whose spend was added to the counters."""
    return f"{PREFIX}:charged"


def window_reset_s(window: str, now: datetime | None = None) -> float:
    """Seconds until ``window`` resets (0 for ``total``)."""
    t = (now or datetime.now(UTC)).astimezone(UTC)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "day":
        end = day + timedelta(days=1)
    elif window == "week":
        end = day + timedelta(days=7 - t.weekday())
    elif window == "month":
        first = day.replace(day=1)
        end = (first + timedelta(days=32)).replace(day=1)
    else:
        return 0.0
    return (end - t).total_seconds()


def to_nano(usd: float) -> int:
    """US dollars to integer nano-dollars (rounded half away from zero)."""
    return round(usd * NANO_PER_USD)


def from_nano(nano: int) -> float:
    """Integer nano-dollars to US dollars."""
    return nano / NANO_PER_USD
