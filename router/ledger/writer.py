"""Stages 10 and 11: settle the reservation and write the ledger record, in one round trip.

:meth:`Ledger.finish` is called once per request (from ``pipeline.record``) and never blocks
the response: it schedules one pipelined Redis round trip holding the settle script and the
ledger script (the record's ``XADD`` and the ``HINCRBY`` of its rollups).
:meth:`Ledger.aclose` waits for what is still in flight at shutdown.

Nothing is lost when Redis cannot take a record: the request's commands go to the local
durable :class:`~router.ledger.spool.Spool` and are replayed when Redis is back
(:mod:`router.ledger.replay`). Each record carries a *write id* (its reservation's id, else a
fresh one): the ledger script refuses a second row for one id, so a replay, a retry after a
timeout, or a ``reclaimed`` row racing the request's own row, leaves exactly one row. The write
id is not the request id because clients may send the same ``x-request-id`` twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import orjson
import structlog
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisError, ResponseError

from router.budget.reserve import Budgets, Reservation
from router.budget.scripts import CHARGE, SETTLE
from router.ledger.record import LedgerRecord
from router.ledger.spool import Command, Spool, SpoolEntry
from router.redis import keys as lk
from router.redis.client import RedisClient
from router.redis.keys import to_nano
from router.redis.mux import RedisMux, pipeline
from router.tasks import Tasks

log = structlog.get_logger("router.ledger")
STREAM_MAXLEN = 20_000_000
"""Approximate cap of the stream (about 12 GB); rollups are kept regardless."""
APPEND = r"""
-- KEYS: stream, rollup hash, days set, teams-of-day set, write-ids-of-day set
-- ARGV: maxlen, day, team, model, JSON [field, value, ...], JSON [metric, increment, ...],
--       write id, ids ttl_s
-- (all strings: Lua numbers are doubles, and large increments must not turn into 1e+14)
-- Returns 1, or 0 when a row with this write id exists already (nothing is changed).
if redis.call('SADD', KEYS[5], ARGV[7]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[5], ARGV[8], 'NX')
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
sixty: redis-py's per-argument encoding was the largest CPU cost of a busy gateway. The write
id's ``SADD`` rides in the same call: idempotency costs no round trip."""
SCRIPTS = {"settle": SETTLE, "charge": CHARGE, "ledger": APPEND}
"""Script sources by the names the spool stores."""
BATCH_DELAY_S = 0.002
"""How long a record waits for others to share its round trip (seconds); responses never wait."""
BATCH_MAX = 256
"""Most records in one pipeline."""
MAX_REQUEST_S = 3600
"""Longest a request may run between arrival (``ts``) and its record, in seconds."""
STORE_ERRORS = (TimeoutError, RedisError, OSError)
"""What sends a record to the spool: the store did not (surely) take it."""


def billed_tokens(record: LedgerRecord) -> int:
    """The tokens ``record`` counts against ``tpm`` limits: none for a cache hit (no upstream
    served them), else prompt plus completion."""
    if record.cache in ("exact", "semantic"):
        return 0
    return record.prompt_tokens + record.completion_tokens


def append_command(
    record: LedgerRecord, write_id: str, *, unmetered: bool = False, reclaimed: bool = False
) -> Command:
    """The ledger script call that appends ``record`` once (``write_id``)."""
    day, model = record.day, record.model
    keys = [
        lk.stream_key(),
        lk.rollup_key(day, record.team),
        lk.days_key(),
        lk.teams_key(day),
        lk.ids_key(day),
    ]
    flat: list[str] = []
    for k, v in record.to_fields().items():
        flat += (k, v)
    cost = to_nano(record.cost_usd)
    inc = (
        ("requests", 1),
        ("errors", 1 if record.status >= 400 else 0),
        ("cache_hits", 1 if record.cache in ("exact", "semantic") else 0),
        ("prompt_tokens", record.prompt_tokens),
        ("completion_tokens", record.completion_tokens),
        ("cost_nusd", cost),
        ("counterfactual_nusd", to_nano(record.counterfactual_usd)),
        ("unmetered_nusd", cost if unmetered else 0),
        ("reclaimed_nusd", cost if reclaimed else 0),
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
        orjson.dumps(flat),  # bytes: redis-py sends them as they are
        orjson.dumps(increments),
        write_id,
        lk.IDS_TTL_S,
    ]
    return "ledger", keys, args


TASK_KIND = "ledger"
"""The kind of the ledger's background writes in :class:`~router.tasks.Tasks`."""


class Ledger:
    """Writes ledger records and settles reservations, in the background."""

    def __init__(
        self,
        redis: RedisClient | None,
        budgets: Budgets,
        spool: Spool | None = None,
        tasks: Tasks | None = None,
    ) -> None:
        """``tasks`` holds the background writes (the app's one owner; a private one if None)."""
        self.redis: Any = redis
        """The client (typed loosely: redis-py's stubs do not know ``decode_responses``)."""
        # Asked per record; RedisCluster's isinstance goes through a protocol check (~10 us).
        self._cluster = isinstance(redis, RedisCluster)
        self.budgets = budgets
        self.spool = spool
        """Where records go when Redis cannot take them (None: they are logged and counted)."""
        self.tasks = tasks if tasks is not None else Tasks()
        self.written = 0
        self.duplicates = 0
        """Appends refused because a row with the same write id exists (replays, reclaims)."""
        self.errors = 0
        self.lost = 0
        """Records neither written nor spooled (no spool, or the disk failed too)."""
        self._pending: list[SpoolEntry] = []
        self._flush_scheduled = False

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background (a task of the ledger's kind)."""
        self.tasks.spawn(TASK_KIND, coro)

    def entry(self, record: LedgerRecord, hold: Reservation | None) -> SpoolEntry:
        """``record``'s commands: the settle (or, for a ``fail_open`` hold, the charge that
        adds its spend to the counters once) and the append; marks ``hold`` settled."""
        commands: list[Command] = []
        unmetered = False
        if hold is not None and not hold.settled:
            hold.settled = True
            if hold.local:
                unmetered = True
                self.budgets.settle_local(hold, record.cost_usd)
                if hold.budget_keys:
                    _, keys, args = self.budgets.charge_command(hold, record.cost_usd)
                    commands.append(("charge", keys, args))
            else:
                tokens = billed_tokens(record)
                _, keys, args = self.budgets.settle_command(hold, record.cost_usd, tokens)
                commands.append(("settle", keys, args))
        write_id = hold.rid if hold is not None else os.urandom(16).hex()
        if unmetered:
            record = dataclasses.replace(record, unmetered=True)
        commands.append(append_command(record, write_id, unmetered=unmetered))
        return SpoolEntry(write_id, record.request_id, commands)

    def finish(self, record: LedgerRecord, hold: Reservation | None) -> None:
        """Settle ``hold`` to ``record.cost_usd`` and append ``record`` (in the background).

        On a standalone Redis, records finishing within ``BATCH_DELAY_S`` of each other share
        one pipelined round trip: per-request pipeline overhead was a large share of a busy
        gateway's CPU. On Cluster each record is written alone.
        """
        self.submit(self.entry(record, hold))

    def submit(self, entry: SpoolEntry) -> None:
        """Write ``entry`` in the background (batched where the client allows)."""
        if self.redis is None or self._cluster:
            self.spawn(self.write_entries([entry]))
            return
        self._pending.append(entry)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.spawn(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(BATCH_DELAY_S)
        self._flush_scheduled = False
        while self._pending:
            batch, self._pending = self._pending[:BATCH_MAX], self._pending[BATCH_MAX:]
            await self.write_entries(batch)

    async def write_entries(self, entries: list[SpoolEntry]) -> None:
        """Run ``entries`` now; what Redis does not take goes to the spool. Never raises."""
        try:
            await self.run_entries(entries)
            self.written += len(entries)
        except STORE_ERRORS as exc:
            self.errors += len(entries)
            await self._spool(entries, exc)

    async def run_entries(self, entries: list[SpoolEntry]) -> list[int]:
        """Run every command of ``entries`` (one pipeline on a standalone Redis); returns the
        ledger script's result per entry (0: a duplicate). Raises on a store error."""
        if self.redis is None:
            raise RedisError("no Redis connection")
        calls = [c for e in entries for c in e.commands]
        if self._cluster:  # its pipelines refuse EVALSHA; keys share a slot
            results = [await self.budgets.eval_script(n, SCRIPTS[n], k, a) for n, k, a in calls]
        else:
            shas = [await self.budgets.sha(name, SCRIPTS[name]) for name, _, _ in calls]
            async with self.budgets.gate:
                # on the budgets' mux when there is one: redis-py's pipeline cost several
                # times its CPU
                fast = self.budgets.scripts if isinstance(self.budgets.scripts, RedisMux) else None
                results = await pipeline(
                    self.redis,
                    fast,
                    [
                        ("EVALSHA", sha, len(k), *k, *a)
                        for sha, (_, k, a) in zip(shas, calls, strict=True)
                    ],
                )
            for i, ((name, keys, args), result) in enumerate(zip(calls, results, strict=True)):
                if isinstance(result, NoScriptError):  # it did not run: run it now
                    results[i] = await self.budgets.eval_script(name, SCRIPTS[name], keys, args)
                elif isinstance(result, Exception):
                    raise result
        appended: list[int] = []
        for (name, _, args), r in zip(calls, results, strict=True):
            if name == "ledger":
                appended.append(int(r))
            elif name == "charge":  # fail-open spend now in the counters: allowance freed
                self.budgets.release_allowance(int(args[1]))
        self.duplicates += appended.count(0)
        return appended

    async def _spool(self, entries: list[SpoolEntry], exc: BaseException) -> None:
        ids = [e.request_id for e in entries]
        if isinstance(exc, ResponseError) and not isinstance(exc, NoScriptError):
            # The server refused a command (not a lost connection): replaying it would fail
            # again. Logged in full so that nothing is silently gone.
            self.lost += len(entries)
            log.error("ledger_write_refused", request_ids=ids, error=repr(exc),
                      entries=[e.line().decode() for e in entries])  # fmt: skip
            return
        if self.spool is None:
            self.lost += len(entries)
            log.warning("ledger_write_failed", request_ids=ids, error=repr(exc))
            return
        try:
            await self.spool.append(entries)
        except OSError as disk:
            self.lost += len(entries)
            log.error("ledger_spool_failed", request_ids=ids, error=repr(exc), disk=repr(disk),
                      entries=[e.line().decode() for e in entries])  # fmt: skip

    async def write(self, record: LedgerRecord, hold: Reservation | None) -> None:
        """Settle and append now; never raises (what fails is spooled)."""
        await self.write_entries([self.entry(record, hold)])

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Wait (at most ``timeout_s`` seconds) for records still being written, including
        those queued for a batch and those that tasks finishing meanwhile add."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.tasks.running(TASK_KIND) or self._pending:
            if self._pending and not self._flush_scheduled:
                batch, self._pending = self._pending, []
                await self.write_entries(batch)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await self.tasks.wait(TASK_KIND, remaining)
        if self._pending:  # out of time: keep them on disk rather than drop them
            batch, self._pending = self._pending, []
            await self._spool(batch, TimeoutError("shutdown"))
        if self.spool is not None:
            self.spool.close()

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
            raw = await self.redis.hgetall(lk.rollup_key(day, team))
            models: dict[str, dict[str, int]] = {}
            for k, v in raw.items():
                model, _, metric = k.rpartition("|")
                models.setdefault(model, {})[metric] = int(v)
            out[team] = models
        return out
