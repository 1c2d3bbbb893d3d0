"""Stored responses: per tenant, in Redis, with a TTL, so ``previous_response_id`` works on
every replica.

One string key per response holds a JSON record: the ``response`` object (what GET returns)
and the conversation as chat messages up to and including this response's answer (what a
follow-up request continues). The key carries the tenant, so a tenant can only ever name its
own responses: another tenant's id simply does not exist for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from router.redis.client import RedisClient
from router.redis.keys import response_key

DEFAULT_TTL_S = 30 * 24 * 3600
"""How long a stored response is kept, seconds (OpenAI keeps them 30 days)."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """One stored response and the conversation it ends."""

    response: dict[str, Any]
    messages: list[dict[str, Any]]
    """Chat messages of the whole chain, without instructions, ending with the answer."""


@dataclass(frozen=True, slots=True)
class ResponseStore:
    """Stored responses of every tenant, in one Redis."""

    client: RedisClient
    ttl_s: int = DEFAULT_TTL_S

    async def put(self, tenant: str, stored: StoredResponse) -> None:
        """Keep ``stored`` for ``ttl_s`` seconds (replacing one with the same id)."""
        record = orjson.dumps({"response": stored.response, "messages": stored.messages})
        await self.client.set(response_key(tenant, stored.response["id"]), record, ex=self.ttl_s)

    async def get(self, tenant: str, response_id: str) -> StoredResponse | None:
        """The stored response ``response_id`` of ``tenant``; None when absent or expired."""
        raw = await self.client.get(response_key(tenant, response_id))
        if raw is None:
            return None
        record = orjson.loads(raw)
        return StoredResponse(response=record["response"], messages=record["messages"])

    async def delete(self, tenant: str, response_id: str) -> bool:
        """Forget a stored response; whether there was one."""
        return bool(await self.client.delete(response_key(tenant, response_id)))
