"""Stages 10 and 11: settle the reservation and write the ledger record, in one round trip.

:meth:`Ledger.finish` is called once per request (from ``pipeline.record``) and never blocks
the response: it schedules one pipelined Redis round trip holding the settle script and the
ledger script (the record's ``XADD`` and the ``HINCRBY`` of its rollups).
:meth:`Ledger.aclose` waits for what is still in flight at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import orjson
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
APPEND = r"""
-- KEYS: stream, rollup hash, days set, teams-of-day set
-- ARGV: maxlen, day, team, model, JSON [field, value, ...], JSON [metric, increment, ...]
-- (all strings: Lua numbers are doubles, and large increments must not turn into 1e+14)
local fields = cjson.decode(ARGV[5])
local xadd = {'XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*'}
for i = 1, #fields do xadd[#xadd + 1] = fields[i] end
redis.call(unpack(xadd))
local inc = cjson.decode(ARGV[6])
for i = 1, #inc, 2 do
  redis.call('HINCRBY', KEYS[2], ARGV[4] .. '|' .. inc[i], inc[i + 1])
end
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[3])
return 1
"""
"""The ledger append: the record's ``XADD`` and its rollups in one script call (one command
instead of eleven), with the record and the increments as two JSON arguments instead of about
sixty: redis-py's per-argument encoding was the largest CPU cost of a busy gateway."""
BATCH_DELAY_S = 0.002
"""How long a record waits for others to share its round trip (seconds); responses never wait."""
BATCH_MAX = 256
"""Most records in one pipeline."""
MAX_REQUEST_S = 3600
"""Longest a request may run between arrival (``ts``) and its record, in seconds."""


def billed_tokens(record: LedgerRecord) -> int:
    """The tokens ``record`` counts against ``tpm`` limits: none for a cache hit (no upstream
    served them), else prompt plus completion."""
    if record.cache in ("exact", "semantic"):
        return 0
    return record.prompt_tokens + record.completion_tokens


class Ledger:
    """Writes ledger records and settles reservations; owns its background tasks."""

    def __init__(self, redis: RedisClient | None, budgets: Budgets) -> None:
        self.redis: Any = redis
        """The client (typed loosely: redis-py's stubs do not know ``decode_responses``)."""
        self.budgets = budgets
        self.tasks: set[asyncio.Task[None]] = set()
        self.written = 0
        self.errors = 0
        self._pending: list[tuple[LedgerRecord, tuple[str, list[str], list[Any]] | None]] = []
        self._flush_scheduled = False

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background, keeping a reference until it finishes."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def finish(self, record: LedgerRecord, hold: Reservation | None) -> None:
        """Settle ``hold`` to ``record.cost_usd`` and append ``record`` (in the background).

        On a standalone Redis, records finishing within ``BATCH_DELAY_S`` of each other share
        one pipelined round trip: per-request pipeline overhead was a large share of a busy
        gateway's CPU. Other cases (Cluster, fail-open holds, no Redis) write one by one.
        """
        batchable = (
            self.redis is not None
            and not isinstance(self.redis, RedisCluster)
            and (hold is None or (not hold.local and not hold.settled))
        )
        if not batchable:
            self.spawn(self.write(record, hold))
            return
        settle = None
        if hold is not None:
            hold.settled = True
            settle = self.budgets.settle_command(hold, record.cost_usd, billed_tokens(record))
        self._pending.append((record, settle))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.spawn(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(BATCH_DELAY_S)
        self._flush_scheduled = False
        while self._pending:
            batch, self._pending = self._pending[:BATCH_MAX], self._pending[BATCH_MAX:]
            await self._write_batch(batch)

    async def _write_batch(
        self, batch: list[tuple[LedgerRecord, tuple[str, list[str], list[Any]] | None]]
    ) -> None:
        """Settle and append every record of ``batch`` in one pipeline; never raises."""
        pipe = self.redis.pipeline(transaction=False)
        calls: list[tuple[str, str, list[str], list[Any]]] = []
        try:
            for record, settle in batch:
                if settle is not None:
                    source, skeys, sargs = settle
                    calls.append(("settle", source, skeys, sargs))
                keys, args = self._append_call(record)
                calls.append(("ledger", APPEND, keys, args))
            for name, source, keys, args in calls:
                pipe.evalsha(await self.budgets.sha(name, source), len(keys), *keys, *args)
            async with self.budgets.gate:
                results = await pipe.execute(raise_on_error=False)
            for (name, source, keys, args), result in zip(calls, results, strict=True):
                if isinstance(result, NoScriptError):  # it did not run: run it now
                    await self.budgets.eval_script(name, source, keys, args)
                elif isinstance(result, Exception):
                    raise result
            self.written += len(batch)
        except (TimeoutError, RedisError, OSError) as exc:
            self.errors += len(batch)
            ids = [r.request_id for r, _ in batch]
            log.warning("ledger_write_failed", request_ids=ids, error=repr(exc))

    async def write(self, record: LedgerRecord, hold: Reservation | None) -> None:
        """Settle and append now; never raises (failures are counted and logged)."""
        settle = None
        tokens = billed_tokens(record)
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
        """One round trip: the settle script (if any) and the ledger script, pipelined."""
        assert self.redis is not None
        keys, args = self._append_call(record)
        if isinstance(self.redis, RedisCluster):  # its pipelines refuse EVALSHA; keys share a slot
            if settle is not None:
                await self.budgets.eval_script("settle", *settle)
            await self.budgets.eval_script("ledger", APPEND, keys, args)
            return
        pipe = self.redis.pipeline(transaction=False)
        if settle is not None:
            source, skeys, sargs = settle
            pipe.evalsha(await self.budgets.sha("settle", source), len(skeys), *skeys, *sargs)
        pipe.evalsha(await self.budgets.sha("ledger", APPEND), len(keys), *keys, *args)
        async with self.budgets.gate:
            results = await pipe.execute(raise_on_error=False)
        if settle is not None and isinstance(results[0], NoScriptError):
            source, skeys, sargs = settle
            await self.budgets.eval_script("settle", source, skeys, sargs)
        if isinstance(results[-1], NoScriptError):  # it did not run: run it now
            await self.budgets.eval_script("ledger", APPEND, keys, args)
        elif isinstance(results[-1], Exception):
            raise results[-1]

    @staticmethod
    def _append_call(record: LedgerRecord) -> tuple[list[str], list[Any]]:
        """Keys and arguments of the ledger script for ``record``."""
        day, model = record.day, record.model
        keys = [
            lk.stream_key(),
            lk.rollup_key(day, record.team),
            lk.days_key(),
            lk.teams_key(day),
        ]
        flat: list[str] = []
        for k, v in record.to_fields().items():
            flat += (k, v)
        inc = (
            ("requests", 1),
            ("errors", 1 if record.status >= 400 else 0),
            ("cache_hits", 1 if record.cache in ("exact", "semantic") else 0),
            ("prompt_tokens", record.prompt_tokens),
            ("completion_tokens", record.completion_tokens),
            ("cost_nusd", to_nano(record.cost_usd)),
            ("counterfactual_nusd", to_nano(record.counterfactual_usd)),
        )
        increments: list[str] = []
        for metric, n in inc:
            if n:
                increments += (metric, str(n))
        args: list[Any] = [
            STREAM_MAXLEN,
            day,
            lk.team_part(record.team),
            model,
            orjson.dumps(flat),
            orjson.dumps(increments),
        ]
        return keys, args

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Wait (at most ``timeout_s`` seconds) for records still being written, including
        those queued for a batch and those that tasks finishing meanwhile add."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.tasks or self._pending:
            if self._pending and not self._flush_scheduled:
                batch, self._pending = self._pending, []
                await self._write_batch(batch)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            if self.tasks:
                with contextlib.suppress(TimeoutError):
                    pending = asyncio.gather(*self.tasks, return_exceptions=True)
                    await asyncio.wait_for(pending, remaining)

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
