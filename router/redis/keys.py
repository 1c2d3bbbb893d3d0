"""Every Redis key of the project, in one place: names, prefixes, hash tags and value units.

These names are stored data: changing one orphans what is already in Redis (budgets, ledger,
heads, keys), so ``tests/unit/core/test_redis_keys.py`` pins each format to its literal string.
Every multi-key script's or transaction's keys share one hash tag, so they live in one slot on
Redis Cluster too.

**Response cache** (hash tag per tenant, ``{<T>}``):

=======================================  ==================================================
``rc:{T}:x:<digest>``                    exact entry (string, JSON, ``EX`` = policy TTL)
``rc:{T}:vs:<scope>``                    semantic vector set of one scope (``VADD``/``VSIM``);
                                         each element's attributes hold its entry (JSON)
``rc:{T}:vz:<scope>``                    sorted set: element -> time stored (Unix seconds),
                                         the age index used for TTL and size-cap eviction
``rc:{T}:vt:<scope>``, ``rc:{T}:vtz:``   the same for whole-turn embeddings (longer prompts)
``rc:{T}:vq:<scope>``, ``rc:{T}:vqz:``   the same for first-stage static embeddings (the
                                         two-stage cache; the transformer confirms a hit)
=======================================  ==================================================

``T`` is the tenant, kept readable when it is short and plain, else replaced by a hash (so a
``{`` or ``}`` in a tenant name can never move the tag). ``<digest>`` and ``<scope>`` are
BLAKE2b digests (hex) computed by :mod:`router.cache.canonical`.

**Budgets and rate limits** (one hash tag ``{budget}``). The reserve script checks and changes
the key, team and global scopes *and* the rate-limit counters in one atomic step; on Redis
Cluster a script may only touch keys of one slot, so one tag for all of them is what keeps
"never overshoot" true there. The price is that budget traffic lands on one shard: each request
costs two small script calls there (reserve, settle), tens of thousands per second on one core.
Per-scope scripts with compensation would spread the load but can overshoot transiently.

===========================================  ==================================================
``rb:{budget}:s:<scope>:<window>``           hash: ``spent`` and ``reserved`` (integer
                                             nano-dollars, 1e-9 USD), ``alerted`` (soft limit
                                             already announced); expires after its window
``rb:{budget}:rl:<scope>:<minute>``          hash: ``req`` and ``tok`` of one UTC minute
                                             (expires after 120 s)
``rb:{budget}:res``                          hash: reservation id -> its detail (amount, tokens,
                                             the scope keys it holds)
``rb:{budget}:exp``                          sorted set: reservation id -> expiry (Unix ms);
                                             the scripts reclaim expired ones (dead workers)
``rb:{budget}:reclaimed``                    hash: reclaimed reservation id -> its detail and
                                             the reclaim time (charged, row not yet written)
``rb:{budget}:reclaiming``                   hash: the same, claimed by a gateway writing the
                                             ``reclaimed`` ledger row
``rb:{budget}:reclaimed_rows``               hash: the same, row written (kept 40 days for
                                             ``router ledger reconcile``)
``rb:{budget}:charged``                      hash: ids of ``fail_open`` spend already added to
                                             the counters (replays add it once)
===========================================  ==================================================

``<scope>`` is ``k:<key id>``, ``t:<team>`` or ``g`` (global); ``<window>`` is ``d20261123``,
``w2026-48``, ``m202611`` or ``total``.

**Ledger and feedback** (one hash tag ``{ledger}``): one stream keeps records in time order for
exports, and its rollups live in the same slot so a record and its rollups are written in one
transaction on Redis Cluster too.

=========================================  ====================================================
``rl:{ledger}:stream``                     stream: one entry per request (see
                                           :class:`router.ledger.record.LedgerRecord`);
                                           entry ids are Unix ms, so ``XRANGE`` by time
``rl:{ledger}:r:<YYYYMMDD>:<team>``        hash: ``<model>|<metric>`` -> integer; metrics are
                                           :data:`METRICS` (``*_nusd`` in nano-dollars,
                                           1e-9 USD, exact sums)
``rl:{ledger}:days``                       set of ``YYYYMMDD`` that have rollups
``rl:{ledger}:teams:<YYYYMMDD>``           set of teams with a rollup that day
``rl:{ledger}:ids:<YYYYMMDD>``             set of write ids of that day's records (8 days):
                                           the ledger script refuses a second row for one id
``rl:{ledger}:req:<tenant>:<request id>``  hash: the request index that feedback is checked
                                           against (:mod:`router.observability.feedback`)
``rl:{ledger}:fb:<tenant>:<request id>``   hash: the feedback on one request
``rl:{ledger}:fb:ids``                     sorted set: ``<tenant>:<request id>`` -> time rated
=========================================  ====================================================

Teams without a key (``auth: none``) are recorded as ``-``.

**Learning loop** (one hash tag ``{learn}``):

======================================  ========================================================
``rl:{learn}:labels``                    stream: one entry per shadow label (see
                                         :class:`router.learning.labels.Label`); entry ids are
                                         Unix ms, trimmed to ``learning.retention_days``
``rl:{learn}:spend:<YYYYMMDD>``          integer: shadow and judge spend of that UTC day, in
                                         nano-dollars (1e-9 USD), reserved before each call
``rl:{learn}:stats:<YYYYMMDD>``          hash: shadow outcomes of that UTC day (``shadowed``,
                                         ``labels``, ``skipped_budget``, ``failed``, ...)
``rl:{learn}:heads``                     list: promoted head versions, newest (serving) first
``rl:{learn}:head:<version>``            hash: ``npz`` (base64 of ``head.npz``), ``metadata``
                                         (JSON), ``created``
``rl:{learn}:head_seq``                  integer: the last version number handed out
``rl:{learn}:log``                       stream: promotions, refusals and rollbacks with their
                                         numbers
``rl:{learn}:state``                     hash: ``labels_at_last_attempt`` (usable labels when
                                         a candidate was last trained)
``rl:{learn}:lock``                      string with a TTL: the replica running the job
======================================  ========================================================

**Virtual keys** (one hash tag ``{keys}``, so create and revoke are single-slot transactions):

==============================  ===============================================================
``vk:{keys}:d:<sha256>``        hash: the key's fields (:meth:`VirtualKey.to_redis`)
``vk:{keys}:id:<key id>``       string: the SHA-256 digest of that key's secret
``vk:{keys}:ids``               set of every key id
==============================  ===============================================================

**Share thresholds**: ``hr:scores:{<route>}``, a capped list of a route's recent scores
(newest first), one hash tag per route.
"""

from __future__ import annotations

import hashlib
import re
import time
from datetime import UTC, datetime, timedelta

# ---- response cache ------------------------------------------------------------------------

CACHE_PREFIX = "rc"
_PLAIN_TENANT = re.compile(r"^[A-Za-z0-9._:@-]{1,64}$")


def tenant_tag(tenant: str) -> str:
    """The cache's hash tag for ``tenant`` (without braces): the name itself, or ``h-<hash>``."""
    if _PLAIN_TENANT.match(tenant):
        return tenant
    return "h-" + hashlib.blake2b(tenant.encode(), digest_size=10).hexdigest()


def response_key(tenant: str, response_id: str) -> str:
    """A stored OpenAI Responses answer: ``resp:{<tenant>}:<response id>``."""
    return f"resp:{{{tenant_tag(tenant)}}}:{response_id}"


def exact_key(tenant: str, digest: str) -> str:
    """The exact-cache entry for request digest ``digest``."""
    return f"{CACHE_PREFIX}:{{{tenant_tag(tenant)}}}:x:{digest}"


def vector_set_key(tenant: str, scope: str) -> str:
    """The semantic vector set of ``scope``."""
    return f"{CACHE_PREFIX}:{{{tenant_tag(tenant)}}}:vs:{scope}"


def age_index_key(tenant: str, scope: str) -> str:
    """The sorted set of element ages (score: Unix seconds stored) of ``scope``."""
    return f"{CACHE_PREFIX}:{{{tenant_tag(tenant)}}}:vz:{scope}"


def turn_vector_set_key(tenant: str, scope: str) -> str:
    """The semantic vector set of ``scope`` for whole-turn embeddings (prompts longer than the
    classifier's token budget), kept apart from :func:`vector_set_key`: the two kinds of
    embedding are never compared with each other."""
    return f"{CACHE_PREFIX}:{{{tenant_tag(tenant)}}}:vt:{scope}"


def turn_age_index_key(tenant: str, scope: str) -> str:
    """The age index (see :func:`age_index_key`) of :func:`turn_vector_set_key`."""
    return f"{CACHE_PREFIX}:{{{tenant_tag(tenant)}}}:vtz:{scope}"


def static_vector_set_key(tenant: str, scope: str) -> str:
    """The semantic vector set of ``scope`` for first-stage static embeddings
    (:mod:`router.classify.static`), searched for candidates that the transformer confirms."""
    return f"{CACHE_PREFIX}:{{{tenant_tag(tenant)}}}:vq:{scope}"


def static_age_index_key(tenant: str, scope: str) -> str:
    """The age index (see :func:`age_index_key`) of :func:`static_vector_set_key`."""
    return f"{CACHE_PREFIX}:{{{tenant_tag(tenant)}}}:vqz:{scope}"


def tenant_pattern(tenant: str) -> str:
    """A ``SCAN MATCH`` pattern for every cache key of ``tenant`` (for purges)."""
    tag = tenant_tag(tenant)
    escaped = re.sub(r"([*?\[\]\\])", r"\\\1", tag)
    return f"{CACHE_PREFIX}:{{{escaped}}}:*"


# ---- budgets and rate limits ---------------------------------------------------------------

BUDGET_PREFIX = "rb:{budget}"
NANO_PER_USD = 1_000_000_000
"""Budget, ledger and learning counters are integers in nano-dollars: exact sums, no float
drift in Lua. The unit is part of the stored format, so it lives beside the key names."""
_PLAIN = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_WINDOW_TTL_S = {"day": 2 * 86400, "week": 8 * 86400, "month": 32 * 86400, "total": 0}


def scope_name(kind: str, name: str = "") -> str:
    """``k:<id>``, ``t:<team>`` or ``g``; odd names are replaced by a digest (no ``,``/tabs)."""
    if kind == "g":
        return "g"
    if _PLAIN.match(name):
        return f"{kind}:{name}"
    return f"{kind}:h-" + hashlib.blake2b(name.encode(), digest_size=10).hexdigest()


def window_id(window: str, now: datetime | None = None) -> str:
    """The id of the ``window`` (day, week, month, total) that contains ``now`` (UTC)."""
    t = (now or datetime.now(UTC)).astimezone(UTC)
    if window == "day":
        return t.strftime("d%Y%m%d")
    if window == "week":
        year, week, _ = t.isocalendar()
        return f"w{year}-{week:02d}"
    if window == "month":
        return t.strftime("m%Y%m")
    return "total"


def window_ttl_s(window: str) -> int:
    """Seconds a window's counters are kept (0: forever)."""
    return _WINDOW_TTL_S[window]


def window_reset_s(window: str, now: datetime | None = None) -> float:
    """Seconds until ``window`` resets, that is until its counters' key changes (0 for
    ``total``)."""
    t = (now or datetime.now(UTC)).astimezone(UTC)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "day":
        end = day + timedelta(days=1)
    elif window == "week":
        end = day + timedelta(days=7 - t.weekday())
    elif window == "month":
        first = day.replace(day=1)
        end = (first + timedelta(days=32)).replace(day=1)
    else:
        return 0.0
    return (end - t).total_seconds()


def scope_key(scope: str, window: str, now: datetime | None = None) -> str:
    """The spend hash of ``scope`` for the current ``window``."""
    return f"{BUDGET_PREFIX}:s:{scope}:{window_id(window, now)}"


def ratelimit_key(scope: str, now_s: float) -> str:
    """The counter hash of ``scope`` for the UTC minute containing ``now_s`` (Unix seconds)."""
    return f"{BUDGET_PREFIX}:rl:{scope}:{int(now_s // 60)}"


def reservations_key() -> str:
    """The hash of open reservations."""
    return f"{BUDGET_PREFIX}:res"


def expiry_key() -> str:
    """The sorted set of open reservations by expiry (Unix ms)."""
    return f"{BUDGET_PREFIX}:exp"


def reclaimed_key() -> str:
    """The hash of reclaimed reservations whose ledger row is not written yet."""
    return f"{BUDGET_PREFIX}:reclaimed"


def reclaiming_key() -> str:
    """The hash of reclaimed reservations a gateway is writing rows for."""
    return f"{BUDGET_PREFIX}:reclaiming"


def reclaimed_rows_key() -> str:
    """The hash of reclaimed holds whose ``reclaimed`` row is written (for reconciliation)."""
    return f"{BUDGET_PREFIX}:reclaimed_rows"


def charged_key() -> str:
    """The hash of ``fail_open`` reservation ids whose spend was added to the counters."""
    return f"{BUDGET_PREFIX}:charged"


def to_nano(usd: float) -> int:
    """US dollars to integer nano-dollars (rounded half away from zero)."""
    return round(usd * NANO_PER_USD)


def from_nano(nano: int) -> float:
    """Integer nano-dollars to US dollars."""
    return nano / NANO_PER_USD


# ---- ledger and feedback -------------------------------------------------------------------

LEDGER_PREFIX = "rl:{ledger}"
NO_TEAM = "-"
METRICS = (
    "requests",
    "errors",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
    "cost_nusd",
    "counterfactual_nusd",
    "unmetered_nusd",
    "reclaimed_nusd",
)
"""The fields of a rollup hash (per model). ``unmetered_nusd``: cost served under
``fail_open`` while Redis was unreachable (added to the budget counters only once Redis was
back); ``reclaimed_nusd``: holds of dead replicas charged at their reserved amount
(``reclaimed`` rows)."""
IDS_TTL_S = 8 * 86400
"""How long a day's write ids are kept: a spool replayed later than this could duplicate."""


def team_part(team: str | None) -> str:
    """``team`` (or tenant) as used in key names: itself when plain, else a digest; ``-`` for
    none."""
    if not team:
        return NO_TEAM
    if _PLAIN.match(team):
        return team
    return "h-" + hashlib.blake2b(team.encode(), digest_size=10).hexdigest()


def stream_key() -> str:
    """The ledger stream."""
    return f"{LEDGER_PREFIX}:stream"


def rollup_key(day: str, team: str | None) -> str:
    """The rollup hash of ``day`` (``YYYYMMDD``, UTC) and ``team``.

    A stored team part (from :func:`teams_key`) maps to itself, so it may be passed back.
    """
    return f"{LEDGER_PREFIX}:r:{day}:{team_part(team)}"


def days_key() -> str:
    """The set of days with rollups."""
    return f"{LEDGER_PREFIX}:days"


def teams_key(day: str) -> str:
    """The set of teams with a rollup on ``day``."""
    return f"{LEDGER_PREFIX}:teams:{day}"


def ids_key(day: str) -> str:
    """The set of write ids of the records of ``day`` (idempotent appends)."""
    return f"{LEDGER_PREFIX}:ids:{day}"


def rollup_field(model: str, metric: str) -> str:
    """The rollup hash field of ``metric`` for ``model``."""
    return f"{model}|{metric}"


def request_key(tenant: str, request_id: str) -> str:
    """The request index hash of ``request_id`` of ``tenant``."""
    return f"{LEDGER_PREFIX}:req:{team_part(tenant)}:{request_id}"


def feedback_key(tenant: str, request_id: str) -> str:
    """The feedback hash of ``request_id`` of ``tenant``."""
    return f"{LEDGER_PREFIX}:fb:{team_part(tenant)}:{request_id}"


def feedback_ids_key() -> str:
    """The sorted set of rated requests (``<tenant>:<request_id>`` by feedback time)."""
    return f"{LEDGER_PREFIX}:fb:ids"


# ---- learning loop -------------------------------------------------------------------------

LEARN_PREFIX = "rl:{learn}"


def utc_day(ts_s: float | None = None) -> str:
    """``YYYYMMDD`` (UTC) of ``ts_s`` (Unix seconds; default now)."""
    return time.strftime("%Y%m%d", time.gmtime(time.time() if ts_s is None else ts_s))


def labels_key() -> str:
    """The stream of shadow labels."""
    return f"{LEARN_PREFIX}:labels"


def spend_key(day: str | None = None) -> str:
    """The shadow spend counter of ``day`` (``YYYYMMDD``, UTC; default today)."""
    return f"{LEARN_PREFIX}:spend:{day or utc_day()}"


def stats_key(day: str | None = None) -> str:
    """The shadow outcome counters of ``day`` (``YYYYMMDD``, UTC; default today)."""
    return f"{LEARN_PREFIX}:stats:{day or utc_day()}"


def heads_key() -> str:
    """The list of promoted head versions, newest first."""
    return f"{LEARN_PREFIX}:heads"


def head_key(version: str) -> str:
    """The hash holding one head version."""
    return f"{LEARN_PREFIX}:head:{version}"


def head_seq_key() -> str:
    """The version counter."""
    return f"{LEARN_PREFIX}:head_seq"


def log_key() -> str:
    """The stream of promotion decisions and rollbacks."""
    return f"{LEARN_PREFIX}:log"


def state_key() -> str:
    """The job's bookkeeping hash."""
    return f"{LEARN_PREFIX}:state"


def lock_key() -> str:
    """The background job's lock."""
    return f"{LEARN_PREFIX}:lock"


# ---- virtual keys --------------------------------------------------------------------------

VIRTUAL_KEYS_PREFIX = "vk:{keys}"


def virtual_key_key(digest: str) -> str:
    """The hash holding the virtual key whose secret has SHA-256 ``digest``."""
    return f"{VIRTUAL_KEYS_PREFIX}:d:{digest}"


def virtual_key_id_key(key_id: str) -> str:
    """The string mapping virtual key ``key_id`` to its digest."""
    return f"{VIRTUAL_KEYS_PREFIX}:id:{key_id}"


def virtual_key_ids_key() -> str:
    """The set of all virtual key ids."""
    return f"{VIRTUAL_KEYS_PREFIX}:ids"


# ---- share thresholds ----------------------------------------------------------------------


def score_window_key(route_alias: str) -> str:
    """The list holding ``route_alias``'s recent scores (newest first)."""
    return f"hr:scores:{{{route_alias}}}"
