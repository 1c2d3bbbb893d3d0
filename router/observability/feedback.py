"""The feedback store: which requests exist (by id), and the feedback given on them.

Redis keys (hash tag ``{ledger}``, next to the ledger's stream and rollups):

========================================  =====================================================
``rl:{ledger}:req:<tenant>:<request_id>``  hash: the request's routing facts (``ts``, ``model``,
                                           ``route``, ``tier``, ``score``, ``team``,
                                           ``prompt_sha256``; ``messages`` as JSON only when
                                           the policy sets ``feedback.store_prompts``)
``rl:{ledger}:fb:<tenant>:<request_id>``   hash: those facts plus the feedback (``rating``,
                                           ``thumbs``, ``needed_strong``, ``comment``,
                                           ``feedback_ts``)
``rl:{ledger}:fb:ids``                     sorted set: ``<tenant>:<request_id>`` by feedback time
========================================  =====================================================

Every key expires after ``feedback.retention_days``. The request index is written for each
successful request, batched: :meth:`FeedbackStore.index` only appends to a list, and one
pipelined call writes what gathered in the last ``FLUSH_DELAY_S``. Keys include the caller's
tenant, so one tenant can neither see nor rate another's requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from router.redis import keys as lk
from router.redis.keys import feedback_ids_key, feedback_key, request_key
from router.redis.mux import RedisMux, pipeline
from router.tasks import cancel_and_wait

log = structlog.get_logger("router.feedback")
FLUSH_DELAY_S = 0.02
"""How long index entries gather before one pipelined write."""


def prompt_digest(messages: Sequence[tuple[str, str]]) -> str:
    """SHA-256 of the (role, text) pairs of a request, as hex."""
    return hashlib.sha256(orjson.dumps(messages)).hexdigest()


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One request's routing facts, as written to its index hash."""

    tenant: str
    request_id: str
    fields: dict[str, str]
    ttl_s: int


@dataclass(frozen=True, slots=True)
class Feedback:
    """Validated feedback on one request."""

    request_id: str
    rating: float | None
    thumbs: str | None
    needed_strong: bool | None
    comment: str | None

    def to_fields(self) -> dict[str, str]:
        """Hash fields (empty string for absent values)."""
        return {
            "rating": "" if self.rating is None else repr(float(self.rating)),
            "thumbs": self.thumbs or "",
            "needed_strong": "" if self.needed_strong is None else str(int(self.needed_strong)),
            "comment": self.comment or "",
            "feedback_ts": repr(time.time()),
        }


class FeedbackUnavailable(RuntimeError):
    """Redis is not reachable, so feedback cannot be stored."""


class FeedbackStore:
    """Writes request index entries (batched) and feedback; reads them back for training."""

    def __init__(self, redis: Any | None, fast: RedisMux | None = None) -> None:
        """Use ``redis`` (a ``decode_responses`` client), or nothing when it is None; index
        entries go through ``fast`` (the worker's multiplexed connection to the same server)
        when there is one."""
        self.redis = redis
        self._fast = fast if redis is not None else None
        self._pending: list[IndexEntry] = []
        self._task: asyncio.Task[None] | None = None
        self.indexed = 0
        self.errors = 0

    def index(self, entry: IndexEntry) -> None:
        """Queue ``entry``; it is written within ``FLUSH_DELAY_S`` (never blocks)."""
        if self.redis is None:
            return
        self._pending.append(entry)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(FLUSH_DELAY_S)
        self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Write every queued entry now (never raises)."""
        batch, self._pending = self._pending, []
        if not batch or self.redis is None:
            return
        # One small command per entry (a JSON string with its TTL), not HSET + EXPIRE: this
        # runs for every request, and per-argument costs add up.
        commands = [
            ("SET", request_key(e.tenant, e.request_id), orjson.dumps(e.fields), "EX", e.ttl_s)
            for e in batch
        ]
        try:
            failed = [
                r
                for r in await pipeline(self.redis, self._fast, commands)
                if isinstance(r, Exception)
            ]
            if failed:
                raise failed[0]
            self.indexed += len(batch)
        except Exception as exc:  # Redis down: feedback on these requests will 404
            self.errors += 1
            log.warning("feedback_index_failed", entries=len(batch), error=repr(exc))

    async def lookup(self, tenant: str, request_id: str) -> dict[str, str] | None:
        """The index entry of ``request_id`` of ``tenant``, or None when unknown or expired."""
        if self.redis is None:
            raise FeedbackUnavailable("the feedback store (Redis) is unavailable")
        if any(e.request_id == request_id and e.tenant == tenant for e in self._pending):
            await self.flush()
        raw = await self.redis.get(request_key(tenant, request_id))
        if not raw:
            return None
        found: dict[str, str] = orjson.loads(raw)
        return found

    async def put(
        self, tenant: str, facts: dict[str, str], feedback: Feedback, ttl_s: int
    ) -> dict[str, str]:
        """Store ``feedback`` with the request's ``facts``; later feedback replaces earlier."""
        if self.redis is None:
            raise FeedbackUnavailable("the feedback store (Redis) is unavailable")
        row = {**facts, **feedback.to_fields(), "tenant": tenant}
        key = feedback_key(tenant, feedback.request_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping=row)
        pipe.expire(key, ttl_s)
        member = f"{lk.team_part(tenant)}:{feedback.request_id}"
        pipe.zadd(feedback_ids_key(), {member: time.time()})
        pipe.zremrangebyscore(feedback_ids_key(), "-inf", time.time() - ttl_s)
        await pipe.execute()
        return row

    async def get(self, tenant: str, request_id: str) -> dict[str, str] | None:
        """The stored feedback row of ``request_id`` of ``tenant``."""
        if self.redis is None:
            raise FeedbackUnavailable("the feedback store (Redis) is unavailable")
        found: dict[str, str] = await self.redis.hgetall(feedback_key(tenant, request_id))
        return found or None

    async def rows(self, since_s: float | None = None, page: int = 500) -> AsyncIterator[
        dict[str, str]
    ]:  # fmt: skip
        """Every stored feedback row (oldest first), with ``tenant`` and ``request_id`` set."""
        if self.redis is None:
            raise FeedbackUnavailable("the feedback store (Redis) is unavailable")
        low = "-inf" if since_s is None else since_s
        offset = 0
        while True:
            ids: list[str] = await self.redis.zrangebyscore(
                feedback_ids_key(), low, "+inf", start=offset, num=page
            )
            if not ids:
                return
            pipe = self.redis.pipeline(transaction=False)
            for member in ids:
                tenant, _, rid = member.partition(":")
                pipe.hgetall(feedback_key(tenant, rid))
            for member, row in zip(ids, await pipe.execute(), strict=True):
                if row:
                    tenant, _, rid = member.partition(":")
                    yield {**row, "tenant": tenant, "request_id": rid}
            offset += len(ids)

    async def aclose(self) -> None:
        """Write what is still queued."""
        task, self._task = self._task, None
        await cancel_and_wait([task])
        await self.flush()
