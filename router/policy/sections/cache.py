"""Policy settings for response caching (the policy's ``cache:`` section)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class CacheSettings(BaseModel):
    """What the gateway caches, for how long, and how similar a prompt must be to reuse it.

    Defaults are safe: only deterministic (``temperature: 0``) requests without tool-call turns
    are cached, and a semantic hit needs a cosine similarity of at least
    ``similarity_threshold`` *and* the false-hit guards to pass (see ``docs/caching.md``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    exact: bool = True
    """Reuse a response to the byte-identical (canonicalised) request."""
    semantic: bool = True
    """Reuse a response to a similar last user message in the same scope."""
    ttl_s: Annotated[int, Field(gt=0, le=30 * 86400)] = 3600
    """How long an entry is served, in seconds."""
    similarity_threshold: Annotated[float, Field(gt=0, le=1)] = 0.9
    """Minimum cosine similarity (all-MiniLM-L6-v2 embeddings) of a semantic hit."""
    semantic_turns: bool = True
    """Give a last user turn longer than the classifier's token budget a whole-turn embedding
    of its own (an extra encoder pass: p50 about 40 ms for 150 tokens and 75-105 ms for 256 on
    a busy 2-core machine, see ``docs/performance.md``); off, such prompts are cached exactly
    only."""
    turn_similarity_threshold: Annotated[float, Field(gt=0, le=1)] = 0.94
    """The same for a prompt longer than the classifier's token budget, which gets a whole-turn
    embedding of its own (up to 320 tokens). Chosen on ``tests/data/cache_pairs_long.jsonl``;
    see ``docs/caching.md``."""
    static_similarity_threshold: Annotated[float, Field(gt=-1, le=1)] = 0.5
    """The first stage's loose threshold: a cached prompt whose static embedding (token vectors
    distilled from the same MiniLM, :mod:`router.classify.static`) is at least this similar to
    the new one is a candidate, which the transformer then checks against
    ``similarity_threshold`` / ``turn_similarity_threshold`` and the guards. Below it, a lookup
    is a miss without any transformer pass. Chosen on the repository's pair sets so that no
    true pair the transformer accepts falls below it; see ``docs/caching.md``."""
    static_candidates: Annotated[int, Field(gt=0, le=16)] = 1
    """How many nearest first-stage entries a lookup considers: each one above the loose
    threshold that passes the guards is confirmed (in one transformer call). 1 is top-1, as the
    single-stage cache searched; more finds a paraphrase that the static ranking puts behind a
    near miss, but each candidate costs a guard check (0.1-0.2 ms of CPU) on every lookup
    that finds near prompts, hit or not: with template-like traffic, that is most of them."""
    max_entries_per_scope: Annotated[int, Field(gt=0)] = 10_000
    """Size cap of one semantic scope (vector set); the oldest entries go first."""
    cache_nonzero_temperature: bool = False
    """Also cache requests with ``temperature`` > 0 or unset (OpenAI's default is 1)."""
    cache_tool_calls: bool = False
    """Also cache tool-call turns (tool results in the request, tool calls in the response)."""
    semantic_max_chars: Annotated[int, Field(gt=0)] = 2000
    """Longer last user messages are cached exactly only: the encoder sees a truncated text."""
    max_entry_bytes: Annotated[int, Field(gt=0)] = 256 * 1024
    """Responses larger than this (serialised, bytes) are not cached."""
    search_ef: Annotated[int, Field(gt=0, le=4096)] | None = 50
    """``VSIM`` exploration factor (None: the server's default, 100). Lower is faster with a
    lower chance of finding the true nearest entry (a missed neighbour is a miss, never a wrong
    answer). 50 keeps a lookup in 100,000 entries under 5 ms at p99 on a 2-core machine; see
    ``docs/performance-cache.md``."""
    timeout_ms: Annotated[int, Field(gt=0)] = 50
    """Budget of one cache lookup or store, in milliseconds; past it the cache is a miss."""
    namespace: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,32}$")] = "v1"
    """Part of every key: change it to invalidate every entry at once."""
