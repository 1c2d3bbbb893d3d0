"""Every stored Redis key name, pinned to its literal string.

Key names are stored data: a renamed key orphans budgets, ledger rows, heads and virtual keys
already in Redis. Each format is checked against the exact string it produced before the keys
moved to :mod:`router.redis.keys`; change a literal here only with a migration.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from router.redis import keys

NOW = datetime(2026, 11, 23, 15, 4, 5, tzinfo=UTC)
LONG = "x" * 65
"""Too long to be used as-is: replaced by a digest."""

PINNED: list[tuple[Callable[[], object], str]] = [
    # response cache
    (lambda: keys.exact_key("acme", "d1g"), "rc:{acme}:x:d1g"),
    (lambda: keys.vector_set_key("acme", "s0"), "rc:{acme}:vs:s0"),
    (lambda: keys.age_index_key("acme", "s0"), "rc:{acme}:vz:s0"),
    (lambda: keys.turn_vector_set_key("acme", "s0"), "rc:{acme}:vt:s0"),
    (lambda: keys.static_vector_set_key("acme", "s0"), "rc:{acme}:vq:s0"),
    (lambda: keys.static_age_index_key("acme", "s0"), "rc:{acme}:vqz:s0"),
    (lambda: keys.turn_age_index_key("acme", "s0"), "rc:{acme}:vtz:s0"),
    (lambda: keys.tenant_pattern("a*b"), "rc:{h-1ee0c5d02f032a13d511}:*"),
    (lambda: keys.tenant_pattern("team:a@b.c"), "rc:{team:a@b.c}:*"),
    (lambda: keys.exact_key("{evil}", "d"), "rc:{h-e791ae07623fb3654bff}:x:d"),
    (lambda: keys.response_key("acme", "resp_1"), "resp:{acme}:resp_1"),
    # budgets and rate limits
    (
        lambda: keys.scope_key(keys.scope_name("k", "key1"), "day", NOW),
        "rb:{budget}:s:k:key1:d20261123",
    ),
    (
        lambda: keys.scope_key(keys.scope_name("t", "ml"), "week", NOW),
        "rb:{budget}:s:t:ml:w2026-48",
    ),
    (lambda: keys.scope_key(keys.scope_name("g"), "month", NOW), "rb:{budget}:s:g:m202611"),
    (lambda: keys.scope_key("g", "total", NOW), "rb:{budget}:s:g:total"),
    (lambda: keys.scope_name("t", "a b"), "t:h-062b1e4326f09f7f450c"),
    (lambda: keys.ratelimit_key("k:key1", 1_764_000_000.5), "rb:{budget}:rl:k:key1:29400000"),
    (keys.reservations_key, "rb:{budget}:res"),
    (keys.expiry_key, "rb:{budget}:exp"),
    (keys.reclaimed_key, "rb:{budget}:reclaimed"),
    (keys.reclaiming_key, "rb:{budget}:reclaiming"),
    (keys.reclaimed_rows_key, "rb:{budget}:reclaimed_rows"),
    (keys.charged_key, "rb:{budget}:charged"),
    # ledger and feedback
    (keys.stream_key, "rl:{ledger}:stream"),
    (lambda: keys.rollup_key("20261123", "ml"), "rl:{ledger}:r:20261123:ml"),
    (lambda: keys.rollup_key("20261123", None), "rl:{ledger}:r:20261123:-"),
    (lambda: keys.rollup_key("20261123", LONG), "rl:{ledger}:r:20261123:h-470070ea64fc23fb21f1"),
    (keys.days_key, "rl:{ledger}:days"),
    (lambda: keys.teams_key("20261123"), "rl:{ledger}:teams:20261123"),
    (lambda: keys.ids_key("20261123"), "rl:{ledger}:ids:20261123"),
    (lambda: keys.rollup_field("gpt-4o", "cost_nusd"), "gpt-4o|cost_nusd"),
    (lambda: keys.request_key("acme", "req-1"), "rl:{ledger}:req:acme:req-1"),
    (lambda: keys.feedback_key("acme", "req-1"), "rl:{ledger}:fb:acme:req-1"),
    (keys.feedback_ids_key, "rl:{ledger}:fb:ids"),
    # learning loop
    (keys.labels_key, "rl:{learn}:labels"),
    (lambda: keys.spend_key("20261123"), "rl:{learn}:spend:20261123"),
    (lambda: keys.stats_key("20261123"), "rl:{learn}:stats:20261123"),
    (keys.heads_key, "rl:{learn}:heads"),
    (lambda: keys.head_key("7"), "rl:{learn}:head:7"),
    (keys.head_seq_key, "rl:{learn}:head_seq"),
    (keys.log_key, "rl:{learn}:log"),
    (keys.state_key, "rl:{learn}:state"),
    (keys.lock_key, "rl:{learn}:lock"),
    (lambda: keys.utc_day(1_764_000_000.0), "20251124"),
    # virtual keys
    (lambda: keys.virtual_key_key("ab12"), "vk:{keys}:d:ab12"),
    (lambda: keys.virtual_key_id_key("key1"), "vk:{keys}:id:key1"),
    (keys.virtual_key_ids_key, "vk:{keys}:ids"),
    # share thresholds
    (lambda: keys.score_window_key("auto"), "hr:scores:{auto}"),
]


@pytest.mark.parametrize(("make", "literal"), PINNED, ids=[lit for _, lit in PINNED])
def test_key_name_is_unchanged(make: Callable[[], object], literal: str) -> None:
    assert make() == literal


def test_prefixes_and_units() -> None:
    assert (keys.CACHE_PREFIX, keys.BUDGET_PREFIX) == ("rc", "rb:{budget}")
    assert (keys.LEDGER_PREFIX, keys.LEARN_PREFIX) == ("rl:{ledger}", "rl:{learn}")
    assert keys.VIRTUAL_KEYS_PREFIX == "vk:{keys}"
    assert keys.to_nano(1.25) == 1_250_000_000 and keys.from_nano(5) == 5e-9


def test_router_redis_does_not_shadow_redis_py() -> None:
    """``router.redis`` imports the ``redis`` library by its absolute name, never itself."""
    import redis
    import redis.asyncio

    from router.redis import client, embedded

    assert redis.__name__ == "redis" and hasattr(redis, "Redis")
    assert vars(embedded)["redis"] is redis
    assert vars(client)["aredis"] is redis.asyncio
