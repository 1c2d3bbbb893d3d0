"""The stored-responses store on a real Redis: TTL, tenant isolation, the key's hash tag."""

from __future__ import annotations

import pytest
import redis.asyncio as aredis

from router.conversations.store import ResponseStore, StoredResponse
from router.redis.keys import response_key

pytestmark = pytest.mark.integration


def stored(response_id: str, text: str) -> StoredResponse:
    return StoredResponse(
        response={"id": response_id, "object": "response", "output": [], "status": "completed"},
        messages=[{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}],
    )


async def test_put_get_delete_with_ttl(redis_client: aredis.Redis) -> None:
    store = ResponseStore(redis_client, ttl_s=120)
    await store.put("acme", stored("resp_1", "hello"))
    got = await store.get("acme", "resp_1")
    assert got is not None and got.messages[0]["content"] == "hello"
    assert got.response["id"] == "resp_1"
    ttl = await redis_client.ttl(response_key("acme", "resp_1"))
    assert 0 < ttl <= 120
    assert await store.delete("acme", "resp_1") is True
    assert await store.get("acme", "resp_1") is None
    assert await store.delete("acme", "resp_1") is False


async def test_one_tenant_never_reads_another(redis_client: aredis.Redis) -> None:
    store = ResponseStore(redis_client)
    await store.put("tenant-a", stored("resp_same", "a's secret"))
    assert await store.get("tenant-b", "resp_same") is None
    assert await store.delete("tenant-b", "resp_same") is False
    got = await store.get("tenant-a", "resp_same")
    assert got is not None and got.messages[0]["content"] == "a's secret"


def test_keys_carry_the_tenant_hash_tag() -> None:
    assert response_key("acme", "resp_1") == "resp:{acme}:resp_1"
    odd = response_key("a}b{c", "resp_1")
    assert odd.startswith("resp:{h-") and odd.count("{") == 1 and odd.count("}") == 1
