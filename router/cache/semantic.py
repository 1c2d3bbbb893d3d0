"""The semantic cache on Redis 8 vector sets: one set per scope, top-1 search, then threshold.

Each scope (tenant + route + parameters + earlier turns, see :mod:`router.cache.canonical`) has
a vector set ``rc:{T}:vs:<scope>`` for the classifier's embeddings, and ``rc:{T}:vt:<scope>`` for
the whole-turn embeddings of longer prompts (:data:`EmbeddingKind`). An element is the request
digest; its vector is the embedding of the prompt (all-MiniLM-L6-v2, 384-d, L2-normalised,
stored with the server's default 8-bit quantisation); its attributes hold the whole
:class:`CacheEntry` as JSON, so a lookup is one ``VSIM ... WITHSCORES WITHATTRIBS COUNT 1``
round trip.

Vector-set elements have no TTL of their own, so a sorted set ``rc:{T}:vz:<scope>`` indexes each
element by the time it was stored. Every store runs one Lua script that adds the element,
removes the elements older than the TTL (at most 256 a call) and pops the oldest ones beyond the
size cap, then refreshes the TTL of both keys, so an idle scope disappears as a whole (the same
call writes the exact cache's entry when both caches take the answer). A lookup
additionally ignores an element whose stored time is older than the TTL, so an entry is never
served late even if no store has swept it yet.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from router.cache.entry import CacheEntry
from router.redis import keys
from router.redis.mux import CommandClient

EmbeddingKind = Literal["classifier", "turn", "static"]
"""Which embedding a vector is: ``classifier``, the classifier's own pass (the whole last turn
fitted its token budget), ``turn``, the extra whole-turn pass over a longer prompt, or
``static``, the two-stage cache's first stage (:mod:`router.classify.static`: found candidates
are confirmed by the transformer). Each kind has its own vector set per scope, so two kinds are
never compared."""


def set_keys(tenant: str, scope: str, kind: EmbeddingKind) -> tuple[str, str]:
    """The vector set and age index of ``scope`` for embeddings of ``kind``."""
    if kind == "turn":
        return keys.turn_vector_set_key(tenant, scope), keys.turn_age_index_key(tenant, scope)
    if kind == "static":
        return keys.static_vector_set_key(tenant, scope), keys.static_age_index_key(tenant, scope)
    return keys.vector_set_key(tenant, scope), keys.age_index_key(tenant, scope)


def build_ef(kind: EmbeddingKind) -> int:
    """``VADD``'s build exploration factor for embeddings of ``kind``. 200 is the server's
    default; the first stage stores one vector per request of ``auto`` (a hit is rare with
    unique prompts), so its insert is on every miss's bill. At 50 it costs the server 93 us
    against 140 at 100 and 247 at 200 (among 11,412 entries: the repo's pair sets, benchmark
    prompts and labelled prompts), and the search still finds the partner of 514 of the 543
    true pairs whose partner is the exact nearest neighbour, against 517 at 100 and 512 at 200:
    the graph's randomness at that size (``loadtests/bench_vector_build.py``)."""
    return 50 if kind == "static" else 200


_STORE = """
local vs, vz = KEYS[1], KEYS[2]
local now, ttl, cap = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
-- the exact cache's copy first: a vector the set refuses (another width) must not lose it
if KEYS[3] then redis.call('SET', KEYS[3], ARGV[3], 'EX', ttl) end
redis.call('VADD', vs, 'FP32', ARGV[1], ARGV[2], 'EF', tonumber(ARGV[7]), 'SETATTR', ARGV[3])
redis.call('ZADD', vz, now, ARGV[2])
local old = redis.call('ZRANGEBYSCORE', vz, '-inf', now - ttl, 'LIMIT', 0, 256)
for _, e in ipairs(old) do redis.call('VREM', vs, e) end
if #old > 0 then redis.call('ZREM', vz, unpack(old)) end
local evicted = #old
local over = redis.call('ZCARD', vz) - cap
if over > 0 then
  local popped = redis.call('ZPOPMIN', vz, over)
  for i = 1, #popped, 2 do redis.call('VREM', vs, popped[i]) end
  evicted = evicted + over
end
redis.call('EXPIRE', vs, ttl)
redis.call('EXPIRE', vz, ttl)
return evicted
"""


def vector_bytes(embedding: npt.ArrayLike) -> bytes:
    """``embedding`` as the little-endian FP32 blob ``VADD``/``VSIM ... FP32`` expect."""
    vec = np.ascontiguousarray(np.asarray(embedding, dtype="<f4").reshape(-1))
    if vec.size == 0 or not np.isfinite(vec).all():
        raise ValueError("embedding is empty or not finite")
    return vec.tobytes()


def parse_vsim(reply: Any) -> tuple[str, float, str | None] | None:
    """``(element, score, attributes)`` of the first result of ``VSIM ... WITHSCORES
    WITHATTRIBS``, from redis-py's parsed dict or a raw flat list; None when empty."""
    found = parse_vsim_all(reply, 1)
    return found[0] if found else None


def parse_vsim_all(reply: Any, count: int) -> list[tuple[str, float, str | None]]:
    """Up to ``count`` ``(element, score, attributes)`` results of ``VSIM ... WITHSCORES
    WITHATTRIBS``, best first, from redis-py's parsed dict or a raw flat list."""
    if not reply:
        return []
    if isinstance(reply, dict):
        rows = [(element, *_score_attrs(value)) for element, value in reply.items()]
    elif count == 1 and len(reply) == 2:  # a lone result without its attributes
        rows = [(reply[0], reply[1], None)]
    else:
        rows = [(reply[i], reply[i + 1], reply[i + 2]) for i in range(0, len(reply) - 2, 3)]
    return [_row(element, score, attrs) for element, score, attrs in rows[:count]]


def _score_attrs(value: Any) -> tuple[Any, Any]:
    if isinstance(value, dict):
        return value.get("score"), value.get("attributes")
    if isinstance(value, list | tuple):
        return value[0], value[1] if len(value) > 1 else None
    return value, None


def _row(element: Any, score: Any, attrs: Any) -> tuple[str, float, str | None]:
    if score is None:
        raise ValueError("VSIM reply without a score")
    if isinstance(element, bytes):
        element = element.decode()
    if isinstance(attrs, bytes):
        attrs = attrs.decode()
    elif attrs is not None and not isinstance(attrs, str):
        raise ValueError("unexpected VSIM attributes")
    return str(element), float(score), attrs


class SemanticCache:
    """Vector-set storage and top-1 search; errors propagate (the service turns them into
    misses). Similarities are cosine similarities in [-1, 1] (``VSIM`` scores are
    ``(1 + cos) / 2``)."""

    def __init__(self, redis: CommandClient) -> None:
        self._redis = redis
        self._store = redis.register_script(_STORE)

    async def nearest(
        self,
        tenant: str,
        scope: str,
        embedding: npt.ArrayLike,
        ef: int | None = None,
        kind: EmbeddingKind = "classifier",
    ) -> tuple[str, float, CacheEntry | None] | None:
        """The most similar element of ``scope`` among embeddings of ``kind``:
        ``(element, cosine, entry)``; None if empty.

        ``entry`` is None when the element's attributes are missing or unreadable. ``ef`` is
        the search's exploration factor (None: the server's default).
        """
        found = await self.nearest_many(tenant, scope, embedding, 1, ef, kind)
        return found[0] if found else None

    async def nearest_many(
        self,
        tenant: str,
        scope: str,
        embedding: npt.ArrayLike,
        count: int,
        ef: int | None = None,
        kind: EmbeddingKind = "classifier",
    ) -> list[tuple[str, float, CacheEntry | None]]:
        """The ``count`` most similar elements of ``scope`` among embeddings of ``kind``, best
        first, as :meth:`nearest` gives one."""
        extra: list[str | int] = [] if ef is None else ["EF", ef]
        reply = await self._redis.execute_command(
            "VSIM",
            set_keys(tenant, scope, kind)[0],
            "FP32",
            vector_bytes(embedding),
            "WITHSCORES",
            "WITHATTRIBS",
            "COUNT",
            count,
            *extra,
            # In the server's main thread: a top-few search of a cache scope is a fraction of a
            # millisecond, and handing it to a search thread and back cost about as much CPU
            # again (measured: 288 -> 149 us of server CPU per lookup in 6,000 entries).
            "NOTHREAD",
        )
        out: list[tuple[str, float, CacheEntry | None]] = []
        for element, score, attrs in parse_vsim_all(reply, count):
            try:
                entry = CacheEntry.loads(attrs) if attrs else None
            except (ValueError, KeyError, TypeError, IndexError):
                entry = None
            out.append((element, 2.0 * score - 1.0, entry))
        return out

    async def add(
        self,
        tenant: str,
        scope: str,
        element: str,
        embedding: npt.ArrayLike,
        entry: CacheEntry,
        ttl_s: int,
        max_entries: int,
        kind: EmbeddingKind = "classifier",
        exact_key: str | None = None,
    ) -> int:
        """Add (or replace) ``element`` among the embeddings of ``kind`` and evict by age and
        size; returns how many went. With ``exact_key``, the same call stores ``entry`` there
        for the exact cache (same TTL): one round trip, and the entry sent once."""
        store_keys = list(set_keys(tenant, scope, kind))
        if exact_key is not None:
            store_keys.append(exact_key)
        evicted = await self._store(
            keys=store_keys,
            args=[
                vector_bytes(embedding),
                element,
                entry.dumps(),
                repr(entry.created_s),
                ttl_s,
                max_entries,
                build_ef(kind),
            ],
        )
        return int(evicted)

    async def remove(
        self, tenant: str, scope: str, element: str, kind: EmbeddingKind = "classifier"
    ) -> None:
        """Drop ``element`` (an expired or unreadable entry found by a lookup)."""
        vs, vz = set_keys(tenant, scope, kind)
        await self._redis.execute_command("VREM", vs, element)
        await self._redis.zrem(vz, element)
