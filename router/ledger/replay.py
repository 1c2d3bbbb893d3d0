"""Background upkeep of the ledger: replay the spool, write rows for reclaimed holds.

:class:`Upkeep` runs in every gateway process:

* **Spool replay.** While the spool holds anything (this process's file, or one left by a
  process that died or restarted), it is replayed into Redis every ``interval_s``: oldest file
  first, lines in order, in pipelined batches. A file is deleted once all of it went through; a
  store error stops the replay until the next try (nothing is skipped, order is kept). The
  commands are idempotent, so a file replayed twice changes nothing the second time.
  :meth:`Upkeep.startup` replays before the process reports ready.
* **Reclaimed holds.** A hold that expired without a settle (its replica died) was charged at
  its reserved amount by the budget scripts and parked in ``rb:{budget}:reclaimed``. Every
  ``reclaim_interval_s`` one gateway claims those older than ``reclaim_grace_s`` (their late
  settle, if any, had its chance) and writes a ``reclaimed`` ledger row for each, with the
  hold's id as write id: the request's own row, should it still come, is then refused, so the
  ledger and the counters keep agreeing (both hold the reserved amount; ``router ledger
  reconcile`` corrects it to what the provider billed).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import structlog
from redis.exceptions import NoScriptError, ResponseError

from router.budget.scripts import CLAIM, CLAIMED
from router.ledger.record import RECLAIMED, LedgerRecord
from router.ledger.spool import Spool, SpoolEntry
from router.ledger.writer import BATCH_MAX, STORE_ERRORS, Ledger, append_command
from router.redis import keys as bk
from router.tasks import cancel_and_wait

log = structlog.get_logger("router.ledger")


def reclaimed_record(rid: str, detail: str) -> LedgerRecord:
    """The ``reclaimed`` ledger row of a hold (``detail``: the reservation's tab-separated
    amount, tokens, scopes, rate scopes and request JSON)."""
    parts = detail.split("\t")
    amount_usd = bk.from_nano(int(parts[0]))
    meta: dict[str, Any] = {}
    if len(parts) > 4 and parts[4] != "-":
        with contextlib.suppress(orjson.JSONDecodeError):
            meta = orjson.loads(parts[4])
    return LedgerRecord(
        ts=float(meta.get("ts") or 0.0),
        request_id=str(meta.get("request_id") or rid),
        tenant=str(meta.get("tenant") or ""),
        key_id=meta.get("key_id"),
        team=meta.get("team"),
        route=meta.get("route"),
        tier=meta.get("tier"),
        reason="reclaimed: the hold expired without a settle (its replica died); charged at "
        "the reserved amount",
        score=None,
        model=str(meta.get("model") or "-"),
        prompt_tokens=0,
        completion_tokens=0,
        estimated=True,
        cost_usd=amount_usd,
        counterfactual_usd=0.0,
        cache="miss",
        latency_ms=0.0,
        policy_hash=str(meta.get("policy_hash") or ""),
        status=0,
        error=RECLAIMED,
        stream=bool(meta.get("stream")),
        fallback=False,
    )


class Upkeep:
    """Replays the spool and writes ``reclaimed`` rows, in the background."""

    def __init__(
        self,
        ledger: Ledger,
        spool: Spool,
        *,
        interval_s: float = 1.0,
        reclaim_interval_s: float = 5.0,
        reclaim_grace_s: float = 10.0,
    ) -> None:
        self.ledger = ledger
        self.spool = spool
        self.interval_s = interval_s
        self.reclaim_interval_s = reclaim_interval_s
        self.reclaim_grace_s = reclaim_grace_s
        self.started = False
        """Whether the start-up replay finished (``/readyz`` waits for it)."""
        self.reclaimed_rows = 0
        self._task: asyncio.Task[None] | None = None

    async def startup(self, timeout_s: float = 30.0) -> None:
        """Replay what an earlier run of this replica left (within ``timeout_s``), then run
        in the background; if Redis is unreachable, the background loop keeps trying and
        :attr:`started` turns true once the spool is replayed."""
        if self.ledger.redis is None:  # no Redis at all: nothing to replay into, or wait for
            self.started = True
        with contextlib.suppress(TimeoutError):
            self.started = await asyncio.wait_for(self.replay(), timeout_s) or self.started
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_claim = loop.time()
        next_refresh = loop.time()
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                if loop.time() >= next_refresh:  # files other processes left meanwhile
                    next_refresh = loop.time() + 10 * self.interval_s
                    await asyncio.to_thread(self.spool.refresh)
                if not self.spool.empty or not self.started:
                    self.started = await self.replay() or self.started
                if loop.time() >= next_claim and self.ledger.redis is not None:
                    next_claim = loop.time() + self.reclaim_interval_s
                    await self.write_reclaimed()
            except asyncio.CancelledError:
                raise
            except STORE_ERRORS:  # Redis is down: requests log that already; try again later
                continue
            except Exception as exc:  # the loop must outlive any one failure
                log.warning("ledger_upkeep_failed", error=repr(exc))

    async def replay(self) -> bool:
        """Replay every spool file nobody writes; True when the spool is empty afterwards."""
        if self.ledger.redis is None:
            return False
        files = await self.spool.take()
        try:
            while files:
                f = files[0]
                for i in range(0, len(f.entries), BATCH_MAX):
                    try:
                        await self._replay_batch(f.entries[i : i + BATCH_MAX])
                    except STORE_ERRORS as exc:
                        log.info("ledger_replay_paused", path=f.path.name, error=repr(exc))
                        return False
                files.pop(0)
                self.spool.replayed_file(f, len(f.entries))
                log.info("ledger_spool_replayed", path=f.path.name, entries=len(f.entries))
        finally:
            for f in files:  # not replayed (yet): released for the next try, kept on disk
                f.done(replayed=False)
        self.spool.refresh()
        return self.spool.empty

    async def _replay_batch(self, entries: list[SpoolEntry]) -> None:
        try:
            await self.ledger.run_entries(entries)
        except ResponseError as exc:
            if isinstance(exc, NoScriptError) or len(entries) == 1:
                if len(entries) == 1:  # refused by the server: it would fail for ever
                    log.error("ledger_replay_refused", entry=entries[0].line().decode(),
                              error=repr(exc))  # fmt: skip
                    return
                raise
            for e in entries:  # find the one the server refuses; replay the others
                await self._replay_batch([e])

    async def write_reclaimed(self, max_rows: int = 64) -> int:
        """Write the ``reclaimed`` rows of holds reclaimed more than ``reclaim_grace_s`` ago;
        returns how many were claimed."""
        keys = [bk.reservations_key(), bk.expiry_key(), bk.reclaimed_key(), bk.reclaiming_key()]
        grace_ms = int(self.reclaim_grace_s * 1000)
        args = [grace_ms, max(60_000, 6 * grace_ms), max_rows]
        flat = await self.ledger.budgets.eval_script("claim", CLAIM, keys, args)
        if not flat:
            return 0
        pairs = list(zip(flat[0::2], flat[1::2], strict=True))
        entries = []
        for rid, detail in pairs:
            record = reclaimed_record(rid, detail)
            cmd = append_command(record, rid, reclaimed=True)
            entries.append(SpoolEntry(rid, record.request_id, [cmd]))
        await self.ledger.run_entries(entries)
        done_keys = [bk.reclaiming_key(), bk.reclaimed_rows_key()]
        rids = [rid for rid, _ in pairs]
        await self.ledger.budgets.eval_script("claimed", CLAIMED, done_keys, rids)
        self.reclaimed_rows += len(entries)
        total = sum(e.cost_usd for e in (reclaimed_record(r, d) for r, d in pairs))
        log.warning("budget_holds_reclaimed", rows=len(entries), charged_usd=round(total, 9),
                    request_ids=[e.request_id for e in entries][:20])  # fmt: skip
        return len(entries)

    async def aclose(self) -> None:
        """Stop the background loop."""
        await cancel_and_wait([self._task])
