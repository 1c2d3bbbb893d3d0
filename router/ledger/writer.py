"""Stages 10 and 11: settle the reservation and write the ledger record, in one round trip.

:meth:`Ledger.finish` is called once per request (from ``pipeline.record``) and never blocks
the response: it schedules one pipelined Redis call holding the settle script, the ``XADD`` of
the record and the ``HINCRBY`` of its rollups. :meth:`Ledger.aclose` waits for what is still
in flight at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import structlog
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisError

from router.budget.keys import to_nano
from router.budget.reserve import Budgets, Reservation
from router.ledger import keys as lk
from router.ledger.record import LedgerRecord
from router.redis_client import RedisClient

log = structlog.get_logger("router.ledger")
STREAM_MAXLEN = 20_000_000
"""Approximate cap of the stream (about 12 GB); rollups are kept regardless."""
MAX_REQUEST_S = 3600
"""Longest a request may run between arrival (``ts``) and its record, in seconds."""


class Ledger:
    """Writes ledger records and settles reservations; owns its background tasks."""

    def __init__(self, redis: RedisClient | None, budgets: Budgets) -> None:
        self.redis: Any = redis
        """The client (typed loosely: redis-py's stubs do not know ``decode_responses``)."""
        self.budgets = budgets
        self.tasks: set[asyncio.Task[None]] = set()
        self.written = 0
        self.errors = 0

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background, keeping a reference until it finishes."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def finish(self, record: LedgerRecord, hold: Reservation | None) -> None:
        """Settle ``hold`` to ``record.cost_usd`` and append ``record`` (in the background)."""
        self.spawn(self.write(record, hold))

    async def write(self, record: LedgerRecord, hold: Reservation | None) -> None:
        """Settle and append now; never raises (failures are counted and logged)."""
        settle = None
        tokens = record.prompt_tokens + record.completion_tokens
        if hold is not None and not hold.settled:
            if hold.local or self.redis is None:
                await self.budgets.settle(hold, record.cost_usd, tokens)
            else:
                hold.settled = True
                settle = self.budgets.settle_command(hold, record.cost_usd, tokens)
        if self.redis is None:
            self.errors += 1
            return
        try:
            if isinstance(self.redis, RedisCluster) and settle is not None:
                hold_again = hold
                assert hold_again is not None
                hold_again.settled = False
                await asyncio.gather(
                    self.budgets.settle(hold_again, record.cost_usd, tokens),
                    self._append(record, None),
                )
            else:
                await self._append(record, settle)
            self.written += 1
        except (TimeoutError, RedisError, OSError) as exc:
            self.errors += 1
            log.warning("ledger_write_failed", request_id=record.request_id, error=repr(exc))

    async def _append(
        self, record: LedgerRecord, settle: tuple[str, list[str], list[Any]] | None
    ) -> None:
        assert self.redis is not None
        day, team, model = record.day, lk.team_part(record.team), record.model
        rollup = lk.rollup_key(day, record.team)
        inc = {
            "requests": 1,
            "errors": 1 if record.status >= 400 else 0,
            "cache_hits": 1 if record.cache in ("exact", "semantic") else 0,
            "prompt_tokens": record.prompt_tokens,
            "completion_tokens": record.completion_tokens,
            "cost_nusd": to_nano(record.cost_usd),
            "counterfactual_nusd": to_nano(record.counterfactual_usd),
        }
        pipe = self.redis.pipeline(transaction=False)
        sha = None
        if settle is not None:
            source, skeys, sargs = settle
            sha = await self.budgets.sha("settle", source)
            pipe.evalsha(sha, len(skeys), *skeys, *sargs)
        pipe.xadd(lk.stream_key(), record.to_fields(), maxlen=STREAM_MAXLEN, approximate=True)
        for metric, n in inc.items():
            if n:
                pipe.hincrby(rollup, lk.rollup_field(model, metric), n)
        pipe.sadd(lk.days_key(), day)
        pipe.sadd(lk.teams_key(day), team)
        async with self.budgets.gate:
            results = await pipe.execute(raise_on_error=False)
        if settle is not None and isinstance(results[0], NoScriptError):
            source, skeys, sargs = settle
            await self.budgets.eval_script("settle", source, skeys, sargs)
        for r in results[1 if settle is not None else 0 :]:
            if isinstance(r, Exception):
                raise r

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Wait (at most ``timeout_s`` seconds) for records still being written."""
        if self.tasks:
            with contextlib.suppress(TimeoutError):
                pending = asyncio.gather(*self.tasks, return_exceptions=True)
                await asyncio.wait_for(pending, timeout_s)

    async def read(
        self, since_s: float | None = None, until_s: float | None = None, page: int = 1000
    ) -> AsyncIterator[LedgerRecord]:
        """Records with ``since_s <= ts < until_s`` (Unix seconds) by stream id, oldest first."""
        assert self.redis is not None
        start = f"{int(since_s * 1000)}-0" if since_s is not None else "-"
        # A record is appended when its request ends, after ``ts``: look a bit past ``until``.
        end = f"{int((until_s + MAX_REQUEST_S) * 1000)}-0" if until_s is not None else "+"
        while True:
            batch = await self.redis.xrange(lk.stream_key(), start, end, count=page)
            for _id, fields in batch:
                rec = LedgerRecord.from_fields(fields)
                if (since_s is None or rec.ts >= since_s) and (until_s is None or rec.ts < until_s):
                    yield rec
            if len(batch) < page:
                return
            start = "(" + batch[-1][0]

    async def rollups(self, day: str) -> dict[str, dict[str, dict[str, int]]]:
        """``{team: {model: {metric: value}}}`` of ``day`` (``YYYYMMDD``)."""
        assert self.redis is not None
        out: dict[str, dict[str, dict[str, int]]] = {}
        for team in sorted(await self.redis.smembers(lk.teams_key(day))):
            raw = await self.redis.hgetall(f"{lk.PREFIX}:r:{day}:{team}")
            models: dict[str, dict[str, int]] = {}
            for k, v in raw.items():
                model, _, metric = k.rpartition("|")
                models.setdefault(model, {})[metric] = int(v)
            out[team] = models
        return out
