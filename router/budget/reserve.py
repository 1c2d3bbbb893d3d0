"""Reservations: hold the worst-case cost against every scope before a model is called.

:meth:`Budgets.reserve` runs one Lua script (:mod:`.scripts`) that checks the rate limits and
budgets of the key, its team and the global scope and, only if all pass, counts the request and
holds ``amount`` in each. :meth:`Budgets.settle_args` / :meth:`Budgets.settle` replace the hold
with the actual cost. A hold that is never settled (its worker died) expires after the policy's
``reservation_ttl_s`` and is reclaimed by the next script run.

Spend never overshoots a limit as long as the actual cost is at most the reservation, which
:mod:`.estimate` guarantees for priced models that honour their output limit.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.exceptions import NoScriptError, RedisError

from router.budget.ratelimit import LimitScope, RateState, rate_headers
from router.budget.scripts import CHARGE, RESERVE, SETTLE
from router.errors import BudgetBusy, BudgetExceeded, RateLimited, ServiceUnavailable
from router.policy.sections.budgets import BudgetSettings
from router.redis import keys as bk
from router.redis.client import RedisClient
from router.redis.mux import RedisMux

log = structlog.get_logger("router.budget")
MAX_CONCURRENT_CALLS = 48
"""Script calls in flight per process: bounds Redis connections under a burst (the client's
pool is unbounded and a burst of hundreds of new connections overflows the listen backlog)."""


@dataclass(frozen=True, slots=True)
class BudgetScope:
    """One spend limit a request counts against."""

    scope: str
    """``k:<id>``, ``t:<team>`` or ``g`` (see :func:`router.redis.keys.scope_name`)."""
    label: str
    """For people: ``key key_ab12``, ``team search``, ``global``."""
    limit_usd: float
    window: str


@dataclass(slots=True)
class Reservation:
    """A hold on the budgets of one request; settle it exactly once."""

    rid: str
    amount_nano: int
    est_tokens: int
    budget_keys: tuple[str, ...] = ()
    key_ttls_s: tuple[int, ...] = ()
    rl_keys: tuple[str, ...] = ()
    local: bool = False
    """Granted from the process's fail-open allowance while Redis was unreachable."""
    headers: dict[str, str] = field(default_factory=dict)
    alerts: tuple[BudgetScope, ...] = ()
    """Scopes whose soft limit this reservation crossed."""
    settled: bool = False


@dataclass(slots=True)
class _Allowance:
    """The fail-open allowance of this process (US dollars)."""

    used_usd: float = 0.0


def _no_room(
    s: BudgetScope,
    spent_nano: int,
    held_nano: int,
    amount_nano: int,
    amount_usd: float,
    age_ms: int,
    ttl_s: float,
) -> BudgetExceeded:
    """The 429 of a scope without room: :class:`BudgetBusy` when only other requests' holds
    block this one (it fits once they settle), else :class:`BudgetExceeded` (retrying the same
    request cannot help before the window resets)."""
    spent, held = bk.from_nano(spent_nano), bk.from_nano(held_nano)
    state = (
        f"${spent:.6f} spent and ${held:.6f} reserved of ${s.limit_usd:g} per {s.window}; "
        f"this request may cost up to ${amount_usd:.6f}"
    )
    if spent_nano + amount_nano <= bk.to_nano(s.limit_usd):
        # Requests usually end about as long after the oldest open hold began as that hold has
        # been open; a hold never outlives the reservation TTL.
        retry_s = min(max(1, -(-age_ms // 1000)), max(1, int(ttl_s)))
        return BudgetBusy(
            f"Budget of {s.label} is busy: {state}. Requests in flight hold the rest; "
            f"retry after {retry_s} s.",
            retry_after_s=retry_s,
        )
    return BudgetExceeded(f"Budget of {s.label} exhausted: {state}.", code="budget_exceeded")


class Budgets:
    """Reserve, settle and release against Redis (``redis=None``: the store is unreachable)."""

    def __init__(self, redis: RedisClient | None, fast: RedisMux | None = None) -> None:
        self.redis: Any = redis
        """The client (typed loosely: redis-py's stubs do not know ``decode_responses``)."""
        self.scripts: Any = fast if fast is not None and redis is not None else redis
        """What runs the scripts: the worker's :class:`RedisMux` to the same server when there
        is one (a command costs a tenth of the CPU), else ``redis``."""
        self._sha: dict[str, str] = {}
        self._allowance = _Allowance()
        self.errors = 0
        self.soft_alerts = 0
        self.gate = asyncio.Semaphore(MAX_CONCURRENT_CALLS)
        """Shared with the ledger writer: every budget and ledger call passes through it."""
        self.spool_full: Callable[[], bool] = lambda: False
        """Whether the ledger spool is full: then no request is served unmetered."""

    async def _load(self, name: str, source: str) -> str:
        assert self.redis is not None
        sha: str = await self.scripts.script_load(source)
        self._sha[name] = sha
        return sha

    async def sha(self, name: str, source: str) -> str:
        """The SHA-1 of script ``name`` as loaded in Redis (loaded on first use)."""
        return self._sha.get(name) or await self._load(name, source)

    async def eval_script(self, name: str, source: str, keys: list[str], args: list[Any]) -> Any:
        """Run script ``name`` (EVALSHA; loads it when Redis does not know it: first call,
        restart, ``SCRIPT FLUSH``)."""
        assert self.redis is not None
        async with self.gate:
            sha = await self.sha(name, source)
            try:
                return await self.scripts.evalsha(sha, len(keys), *keys, *args)
            except NoScriptError:
                sha = await self._load(name, source)
                return await self.scripts.evalsha(sha, len(keys), *keys, *args)

    async def reserve(
        self,
        settings: BudgetSettings,
        scopes: tuple[BudgetScope, ...],
        limits: tuple[LimitScope, ...],
        amount_usd: float,
        est_tokens: int,
        meta: str = "-",
    ) -> Reservation | None:
        """Hold ``amount_usd`` against ``scopes`` and count one request against ``limits``.

        ``meta`` (JSON without tabs) describes the request for the ``reclaimed`` ledger row
        written if the hold is never settled. Returns None when nothing limits the request.
        Raises :class:`BudgetExceeded`, :class:`RateLimited`, or :class:`ServiceUnavailable`
        (store down, ``fail_closed``).
        """
        if not scopes and not limits:
            return None
        amount = bk.to_nano(amount_usd)
        rid = uuid.uuid4().hex
        budget_keys = tuple(bk.scope_key(s.scope, s.window) for s in scopes)
        ttls = tuple(bk.window_ttl_s(s.window) for s in scopes)
        now_s = time.time()
        rl_keys = tuple(bk.ratelimit_key(lim.scope, now_s) for lim in limits)
        args: list[Any] = [rid, amount, int(settings.reservation_ttl_s * 1000)]
        args += [len(scopes), len(limits), est_tokens]
        for s, ttl in zip(scopes, ttls, strict=True):
            limit = bk.to_nano(s.limit_usd)
            soft = -1
            if settings.soft_limit_percent is not None:
                soft = int(limit * settings.soft_limit_percent / 100)
            args += [limit, ttl, soft]
        for lim in limits:
            args += [lim.rpm or 0, lim.tpm or 0]
        args.append(meta)
        keys = [bk.reservations_key(), bk.expiry_key(), *budget_keys, *rl_keys]
        try:
            if self.redis is None:
                raise RedisError("no Redis connection")
            reply = await self.eval_script("reserve", RESERVE, keys, args)
        except (TimeoutError, RedisError, OSError) as exc:
            hold = self._store_down(settings, amount_usd, est_tokens, exc)
            hold.budget_keys, hold.key_ttls_s = budget_keys, ttls  # charged once Redis is back
            return hold
        status, idx, retry_ms, values, crossed = reply
        if status == 1:
            s = scopes[int(idx) - 1]
            raise _no_room(s, int(values[0]), int(values[1]), amount, amount_usd, int(retry_ms),
                           settings.reservation_ttl_s)  # fmt: skip
        if status in (2, 3):
            lim = limits[int(idx) - 1]
            what = "requests" if status == 2 else "tokens"
            retry_s = max(1, -(-int(retry_ms) // 1000))
            count = int(values[0])
            state = RateState(lim, count, 0) if status == 2 else RateState(lim, 0, count)
            headers = rate_headers([state], retry_ms / 1000)
            headers["retry-after"] = str(retry_s)
            raise RateLimited(
                f"Rate limit of {lim.label} reached: {values[1]} {what} per minute. "
                f"Retry after {retry_s} s.",
                code=f"rate_limit_{what}",
                headers=headers,
            )
        counts = [int(v) for v in values]
        states = [RateState(lim, counts[2 * i], counts[2 * i + 1]) for i, lim in enumerate(limits)]
        alerts = tuple(scopes[int(i) - 1] for i in crossed)
        return Reservation(
            rid,
            amount,
            est_tokens,
            budget_keys,
            ttls,
            rl_keys,
            headers=rate_headers(states, 60 - now_s % 60) if states else {},
            alerts=alerts,
        )

    def _store_down(
        self, settings: BudgetSettings, amount_usd: float, est_tokens: int, exc: BaseException
    ) -> Reservation:
        self.errors += 1
        log.warning("budget_store_error", error=repr(exc), mode=settings.on_store_error)
        if settings.on_store_error == "fail_open" and not self.spool_full():
            a = self._allowance
            if a.used_usd + amount_usd <= settings.local_allowance_usd:
                a.used_usd += amount_usd
                return Reservation(uuid.uuid4().hex, bk.to_nano(amount_usd), est_tokens, local=True)
        raise ServiceUnavailable(
            "The budget store is unreachable; requests are refused until it is back.",
            code="budget_store_unavailable",
        )

    def settle_command(self, hold: Reservation, actual_usd: float, actual_tokens: int) -> tuple[
        str, list[str], list[Any]
    ]:  # fmt: skip
        """The (script source, keys, args) that settle ``hold`` to ``actual_usd``."""
        keys = [bk.reservations_key(), bk.expiry_key(), *hold.budget_keys, *hold.rl_keys]
        args: list[Any] = [hold.rid, bk.to_nano(actual_usd), hold.amount_nano, actual_tokens]
        args += [hold.est_tokens, len(hold.budget_keys), *hold.key_ttls_s]
        return SETTLE, keys, args

    def charge_command(self, hold: Reservation, actual_usd: float) -> tuple[
        str, list[str], list[Any]
    ]:  # fmt: skip
        """The (script source, keys, args) that add a ``fail_open`` hold's actual cost to its
        scopes' counters, once (replays of the same hold change nothing)."""
        keys = [bk.charged_key(), *hold.budget_keys]
        return CHARGE, keys, [hold.rid, bk.to_nano(actual_usd), *hold.key_ttls_s]

    def release_allowance(self, charged_nano: int) -> None:
        """Spend served under ``fail_open`` reached the Redis counters: it no longer counts
        against this process's allowance."""
        a = self._allowance
        a.used_usd = max(0.0, a.used_usd - bk.from_nano(charged_nano))

    def settle_local(self, hold: Reservation, actual_usd: float) -> None:
        """Settle a fail-open hold against this process's allowance."""
        a = self._allowance
        a.used_usd = max(0.0, a.used_usd - bk.from_nano(hold.amount_nano) + actual_usd)

    async def settle(self, hold: Reservation, actual_usd: float, actual_tokens: int) -> bool:
        """Replace ``hold`` with the actual cost; release it when ``actual_usd`` is 0.

        Returns whether the hold was still open. Never raises: a failed settle is logged and
        the hold expires on its own.
        """
        if hold.settled:
            return False
        hold.settled = True
        if hold.local:
            self.settle_local(hold, actual_usd)
            return True
        source, keys, args = self.settle_command(hold, actual_usd, actual_tokens)
        try:
            return int(await self.eval_script("settle", source, keys, args)) == 1
        except (TimeoutError, RedisError, OSError) as exc:
            self.errors += 1
            log.warning("budget_settle_failed", rid=hold.rid, error=repr(exc))
            return False

    async def spent_usd(self, scope: BudgetScope) -> tuple[float, float]:
        """(spent, reserved) of ``scope`` in its current window, in US dollars."""
        assert self.redis is not None
        v = await self.redis.hmget(bk.scope_key(scope.scope, scope.window), ["spent", "reserved"])
        return bk.from_nano(int(v[0] or 0)), bk.from_nano(int(v[1] or 0))
