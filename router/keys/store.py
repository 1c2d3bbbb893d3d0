"""Virtual keys in Redis, and the :class:`router.auth.KeyStore` the gateway authenticates with.

Redis keys (one hash tag ``{keys}``, so create and revoke are single-slot transactions):

==============================  ===============================================================
``vk:{keys}:d:<sha256>``        hash: the key's fields (:meth:`VirtualKey.to_redis`)
``vk:{keys}:id:<key id>``       string: the SHA-256 digest of that key's secret
``vk:{keys}:ids``               set of every key id
==============================  ===============================================================

Lookups are cached in-process for ``cache_ttl_s`` (default 1 s): the hot path costs one Redis
round trip per key per second, and a revoked key stops working everywhere within that time (at
once in the process that revoked it). While Redis is unreachable, keys seen in the last
``STALE_IF_ERROR_S`` keep their last state (budgets then follow ``on_store_error``); unknown
keys get a 503.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from router.auth import Principal
from router.errors import ServiceUnavailable
from router.keys.model import VirtualKey, new_key_id, new_secret, secret_digest
from router.redis import keys as rk
from router.redis.client import RedisClient

CACHE_MAX_ENTRIES = 10_000
MAX_CONCURRENT_LOOKUPS = 16
STALE_IF_ERROR_S = 300.0
"""While Redis is unreachable, a key looked up within this many seconds keeps its last state."""
"""Lookups in flight per process; redis-py's pool refuses (not queues) past 100 connections."""


@dataclass(slots=True)
class _Cached:
    key: VirtualKey | None
    until: float
    """``time.monotonic()`` after which the entry is stale, in seconds."""


def _unavailable(exc: BaseException) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"The key store is unreachable ({type(exc).__name__}); try again shortly.",
        code="key_store_unavailable",
    )


class KeyNotFound(LookupError):
    """No key has that id."""


class RedisKeyStore:
    """Create, list, update and revoke virtual keys; look them up by secret (cached)."""

    def __init__(self, redis: RedisClient, cache_ttl_s: float = 1.0) -> None:
        self.redis: Any = redis
        """The client (typed loosely: redis-py's stubs do not know ``decode_responses``)."""
        self.cache_ttl_s = cache_ttl_s
        self._by_digest: dict[str, _Cached] = {}
        self._by_id: dict[str, VirtualKey] = {}
        self._inflight: dict[str, asyncio.Future[VirtualKey | None]] = {}
        self._gate = asyncio.Semaphore(MAX_CONCURRENT_LOOKUPS)

    # ---- the hot path ------------------------------------------------------------------------

    async def lookup(self, secret: str) -> Principal | None:
        """The principal of ``secret``, or None when unknown, revoked or expired."""
        key = await self.find(secret)
        if key is None or not key.active():
            return None
        return Principal(tenant=key.tenant, key_id=key.id, team=key.team)

    async def find(self, secret: str) -> VirtualKey | None:
        """The stored key of ``secret`` (active or not), through the in-process cache."""
        digest = secret_digest(secret)
        now = time.monotonic()
        hit = self._by_digest.get(digest)
        if hit is not None and hit.until > now:
            return hit.key
        pending = self._inflight.get(digest)
        if pending is not None:  # single flight: a burst of one new key costs one round trip
            return await asyncio.shield(pending)
        fut: asyncio.Future[VirtualKey | None] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = fut
        try:
            async with self._gate:
                raw: dict[str, str] = await self.redis.hgetall(rk.virtual_key_key(digest))
        except (RedisError, OSError, TimeoutError) as exc:
            if hit is not None and hit.until + STALE_IF_ERROR_S > now:
                fut.set_result(hit.key)  # Redis is down: the last answer, for a while
                return hit.key
            fut.set_exception(_unavailable(exc))
            fut.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise _unavailable(exc) from exc
        finally:
            self._inflight.pop(digest, None)
        key = VirtualKey.from_redis(raw) if raw else None
        fut.set_result(key)
        if len(self._by_digest) >= CACHE_MAX_ENTRIES:
            self._by_digest.clear()
            self._by_id.clear()
        self._by_digest[digest] = _Cached(key, now + self.cache_ttl_s)
        if key is not None:
            self._by_id[key.id] = key
        return key

    def cached(self, key_id: str | None) -> VirtualKey | None:
        """The key ``key_id`` as last looked up by this process (None if never)."""
        return self._by_id.get(key_id) if key_id else None

    def _forget(self, key: VirtualKey) -> None:
        self._by_digest.pop(key.digest, None)
        self._by_id.pop(key.id, None)

    # ---- administration ----------------------------------------------------------------------

    async def create(
        self,
        team: str,
        *,
        tenant: str | None = None,
        name: str | None = None,
        budget_usd: float | None = None,
        window: str = "month",
        rpm: int | None = None,
        tpm: int | None = None,
        models: tuple[str, ...] = (),
        expires_at: datetime | None = None,
    ) -> tuple[str, VirtualKey]:
        """Create a key; return ``(secret, key)``. The secret is not stored and not shown again."""
        secret = new_secret()
        key = VirtualKey(
            id=new_key_id(),
            team=team,
            tenant=tenant or team,
            digest=secret_digest(secret),
            name=name,
            budget_usd=budget_usd,
            window=window,
            rpm=rpm,
            tpm=tpm,
            models=models,
            expires_at=expires_at,
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(rk.virtual_key_key(key.digest), mapping=key.to_redis())
            pipe.set(rk.virtual_key_id_key(key.id), key.digest)
            pipe.sadd(rk.virtual_key_ids_key(), key.id)
            await pipe.execute()
        return secret, key

    async def get(self, key_id: str) -> VirtualKey:
        """The key ``key_id``; raises :class:`KeyNotFound`."""
        digest = await self.redis.get(rk.virtual_key_id_key(key_id))
        raw: dict[str, str] = await self.redis.hgetall(rk.virtual_key_key(digest)) if digest else {}
        if not raw:
            raise KeyNotFound(key_id)
        return VirtualKey.from_redis(raw)

    async def list(self, team: str | None = None) -> list[VirtualKey]:
        """Every key (of ``team`` when given), oldest first."""
        ids = sorted(await self.redis.smembers(rk.virtual_key_ids_key()))
        keys: list[VirtualKey] = []
        for key_id in ids:
            try:
                key = await self.get(key_id)
            except KeyNotFound:
                continue
            if team is None or key.team == team:
                keys.append(key)
        keys.sort(key=lambda k: k.created_at)
        return keys

    async def update(self, key_id: str, **changes: Any) -> VirtualKey:
        """Change fields of ``key_id`` (budget_usd, window, rpm, tpm, models, expires_at, name,
        team); a None value clears an optional field. Raises :class:`KeyNotFound`."""
        key = await self.get(key_id)
        new = key.updated(**changes)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(rk.virtual_key_key(key.digest))
            pipe.hset(rk.virtual_key_key(key.digest), mapping=new.to_redis())
            await pipe.execute()
        self._forget(key)
        return new

    async def revoke(self, key_id: str) -> VirtualKey:
        """Revoke ``key_id``: it stops authenticating (everywhere within ``cache_ttl_s``)."""
        key = await self.get(key_id)
        await self.redis.hset(rk.virtual_key_key(key.digest), "revoked", "1")
        self._forget(key)
        return key.updated(revoked=True)


def expired(key: VirtualKey) -> bool:
    """Whether ``key`` has passed its expiry."""
    return key.expires_at is not None and key.expires_at <= datetime.now(UTC)
