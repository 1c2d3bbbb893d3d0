"""The exact cache: one string key per canonical request digest, expiring by TTL."""

from __future__ import annotations

from router.cache.entry import CacheEntry
from router.redis import keys
from router.redis.mux import CommandClient


class ExactCache:
    """``GET``/``SET EX`` of :class:`CacheEntry` JSON under :func:`keys.exact_key`.

    Errors propagate; :class:`router.cache.service.ResponseCache` turns them into misses.
    """

    def __init__(self, redis: CommandClient) -> None:
        self._redis = redis

    async def get(self, tenant: str, digest: str) -> CacheEntry | None:
        """The entry for ``digest``, or None."""
        data = await self._redis.get(keys.exact_key(tenant, digest))
        if data is None:
            return None
        return CacheEntry.loads(data)

    async def put(self, tenant: str, digest: str, entry: CacheEntry, ttl_s: int) -> None:
        """Store ``entry`` for ``ttl_s`` seconds."""
        await self._redis.set(keys.exact_key(tenant, digest), entry.dumps(), ex=ttl_s)
