"""The one container of long-lived objects, built in the app's lifespan (no module globals)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog

from router.auth import Authenticator
from router.backends.embedding_calls import LocalEncoders
from router.backends.registry import BackendRegistry
from router.backends.token_count import TokenCounter
from router.budget.reserve import Budgets
from router.cache.service import ResponseCache
from router.classify.base import Classifier
from router.classify.factory import build_classifier
from router.keys.store import RedisKeyStore
from router.learning.runtime import LearningRuntime
from router.ledger.replay import Upkeep
from router.ledger.spool import Spool, SpoolCollector
from router.ledger.writer import Ledger
from router.observability.hub import Observability
from router.policy.schema import Policy
from router.policy.sections.classifier import ClassifierSettings
from router.policy.store import PolicyStore
from router.redis.client import RedisHandle, connect_redis
from router.redis.mux import RedisMux
from router.route.share import LocalScoreWindow, ScoreWindow
from router.route.share_redis import RedisScoreWindow
from router.settings import Settings, default_data_dir
from router.tasks import Tasks

log = structlog.get_logger(__name__)
TASK_KIND = "services"
"""The kind of model loads and classifier swaps in :class:`~router.tasks.Tasks`."""
SHUTDOWN_DRAIN_S = 10.0
"""How long shutdown waits for background tasks before it cancels them."""


def build_http_session(max_connections: int) -> aiohttp.ClientSession:
    """The pooled upstream session (aiohttp; see docs/performance.md for why not httpx).

    Must be called inside the running event loop.
    """
    connector = aiohttp.TCPConnector(
        limit=max_connections, keepalive_timeout=30.0, ttl_dns_cache=300
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0),
        auto_decompress=True,
        trust_env=False,
        skip_auto_headers=("User-Agent",),
    )


@dataclass
class Services:
    """Everything a request needs that outlives it."""

    settings: Settings
    policies: PolicyStore
    http: aiohttp.ClientSession
    backends: BackendRegistry
    classifier: Classifier
    auth: Authenticator
    counters: Counter[str] = field(default_factory=Counter)
    ready: bool = False
    redis: RedisHandle | None = None
    """The shared Redis (``REDIS_URL``, else embedded); None when it could not be reached."""
    keys: RedisKeyStore | None = None
    budgets: Budgets = field(default_factory=lambda: Budgets(None))
    ledger: Ledger | None = None
    upkeep: Upkeep | None = None
    """Replays the ledger spool and writes rows for reclaimed holds."""
    cache: ResponseCache | None = None
    """The response cache (exact and semantic); None without Redis."""
    observability: Observability = field(default_factory=Observability)
    tokens: TokenCounter = field(default_factory=TokenCounter)
    """Counts prompts with a model's own tokenizer for the context-window gate."""
    embedders: LocalEncoders = field(default_factory=LocalEncoders)
    """The encoder behind ``backend: encoder`` embedding models (loaded on first use)."""
    _score_windows: dict[str, ScoreWindow] = field(default_factory=dict)
    tasks: Tasks = field(default_factory=Tasks)
    """The one owner of background tasks (the lifespan's); drained by :meth:`aclose`."""
    _classifier_settings: ClassifierSettings | None = None
    learning: LearningRuntime | None = None
    """Shadow labels and shared heads; None without Redis."""
    head_dir: str | None = None
    """The promoted head this process serves instead of the policy's ``model_dir``."""
    mux: RedisMux | None = None
    """The multiplexed connection of the budget scripts and the cache (None: redis-py's)."""

    @classmethod
    async def start(
        cls, settings: Settings, policies: PolicyStore | None = None, tasks: Tasks | None = None
    ) -> Services:
        """Load the policy and build clients, backends and the classifier; every background
        task runs in ``tasks`` (the lifespan's owner; a new one if None)."""
        tasks = tasks if tasks is not None else Tasks()
        store = policies or PolicyStore.open(settings.policy_path, settings.policy_env)
        http = build_http_session(settings.upstream_max_connections)
        backends = BackendRegistry(http)
        await asyncio.to_thread(backends.prepare, store.current.policy)
        classifier = await asyncio.to_thread(build_classifier, store.current.policy.classifier)
        redis = await _connect_redis(settings)
        keys = RedisKeyStore(redis.client) if redis is not None else None
        # The request path's budget scripts and cache commands go through one multiplexed
        # connection per worker (router/redis/mux.py); the rest keeps redis-py's pool.
        mux = RedisMux.for_client(redis.client) if redis is not None else None
        budgets = Budgets(redis.client if redis is not None else None, mux)
        spool = _open_spool(settings)
        ledger = Ledger(redis.client if redis is not None else None, budgets, spool, tasks)
        if spool is not None:
            budgets.spool_full = lambda: spool.full
        services = cls(
            settings=settings,
            policies=store,
            http=http,
            backends=backends,
            classifier=classifier,
            auth=Authenticator(settings.master_key, keys),
            redis=redis,
            keys=keys,
            budgets=budgets,
            ledger=ledger,
            observability=Observability.start(
                redis.client if redis else None, budgets, settings, mux
            ),
            cache=ResponseCache(mux or redis.client, tasks=tasks) if redis is not None else None,
            mux=mux,
            tasks=tasks,
            tokens=TokenCounter(lambda: backends.local),
        )
        services._classifier_settings = store.current.policy.classifier
        # Local models take from seconds to minutes to load: load them in the background
        # and let /readyz say 503 until they are in (or failed).
        services._spawn(backends.start_local(store.current.policy))
        services._spawn(services._warm_tokenizers(store.current.policy))
        if redis is not None:
            services.learning = await LearningRuntime.start(
                redis.client,
                current_policy=lambda: store.current.policy,
                swap_head=services.swap_head,
                backend_for=backends.for_model,
                ledger=ledger,
                tasks=tasks,
            )
        store.on_reload = services._on_policy_reload
        store.start(settings.policy_poll_s)
        if spool is not None:  # what an earlier run left is replayed before ready
            services.upkeep = Upkeep(ledger, spool)
            services.observability.metrics.add_runtime(SpoolCollector(spool))
            await services.upkeep.startup()
        services.ready = True
        log.info("services_ready", policy_hash=store.current.hash)
        return services

    def _on_policy_reload(self) -> None:
        policy = self.policies.current.policy
        self.backends.prepare(policy)
        self._spawn(self.backends.start_local(policy))
        self._spawn(self._warm_tokenizers(policy))
        if self._effective_classifier(policy) != self._classifier_settings:
            self._spawn(self._swap_classifier(policy))

    def _effective_classifier(self, policy: Policy) -> ClassifierSettings:
        """The policy's classifier settings, with the promoted head's folder when one serves."""
        settings = policy.classifier
        if self.head_dir is not None and settings.kind == "trained":
            settings = settings.model_copy(update={"model_dir": self.head_dir})
        return settings

    async def swap_head(self, model_dir: str | None) -> None:
        """Serve the head in ``model_dir`` (None: the policy's own), without a restart."""
        self.head_dir = model_dir
        policy = self.policies.current.policy
        if self._effective_classifier(policy) != self._classifier_settings:
            await self._swap_classifier(policy)

    async def _warm_tokenizers(self, policy: Policy) -> None:
        """Load the hosted models' tokenizers off the event loop; never raises."""
        try:
            await asyncio.to_thread(self.tokens.warm, policy)
        except Exception as exc:  # an unknown tokenizer only means the estimate is used
            log.warning("tokenizer_warm_failed", error=repr(exc))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` (a model load, a classifier swap) in the background."""
        self.tasks.spawn(TASK_KIND, coro)

    async def _swap_classifier(self, policy: Policy) -> None:
        """Load the classifier a reloaded policy asks for, off the event loop, then swap."""
        settings = self._effective_classifier(policy)
        new = await asyncio.to_thread(build_classifier, settings)
        old, self.classifier = self.classifier, new
        self._classifier_settings = settings
        log.info("classifier_swapped", source=getattr(new, "source", type(new).__name__))
        await old.aclose()

    def score_window(self, route_alias: str) -> ScoreWindow:
        """The rolling score window of a route with ``target_strong_share`` (shared by
        replicas through Redis when it is there)."""
        window = self._score_windows.get(route_alias)
        if window is None:
            if self.redis is not None:
                window = RedisScoreWindow(self.redis.client, route_alias, tasks=self.tasks)
            else:
                window = LocalScoreWindow()
            self._score_windows[route_alias] = window
        return window

    async def aclose(self) -> None:
        """Stop background work and close clients."""
        self.ready = False
        for window in self._score_windows.values():
            if isinstance(window, RedisScoreWindow):
                await window.aclose()
        if self.learning is not None:
            await self.learning.aclose()
        # The one place background work ends: model loads and classifier swaps are waited for
        # (as long as they take); then every other task (ledger writes, cache stores, shadow
        # jobs, score pushes, and what they start) gets SHUTDOWN_DRAIN_S, the rest is cancelled.
        await self.tasks.wait(TASK_KIND)
        await self.tasks.drain(SHUTDOWN_DRAIN_S)
        if self.upkeep is not None:
            await self.upkeep.aclose()
        if self.ledger is not None:
            await self.ledger.aclose()
        if self.cache is not None:
            await self.cache.aclose()
        await self.observability.aclose()
        await self.policies.stop()
        await self.classifier.aclose()
        self.embedders.close()
        await self.backends.aclose()
        await self.http.close()
        if self.mux is not None:
            await self.mux.aclose()
        if self.redis is not None:
            await self.redis.aclose()


def _open_spool(settings: Settings) -> Spool | None:
    """The ledger spool in the data directory; None (logged) when it cannot be created."""
    try:
        return Spool.in_data_dir(default_data_dir(settings), settings.spool_max_bytes)
    except OSError as exc:
        log.error("ledger_spool_unavailable", error=repr(exc))
        return None


async def _connect_redis(settings: Settings) -> RedisHandle | None:
    """Connect to ``REDIS_URL`` (or start the embedded server); None, logged, on failure."""
    try:
        handle = await asyncio.wait_for(connect_redis(settings.redis_url, settings.data_dir), 30)
    except Exception as exc:
        log.error("redis_unavailable", error=repr(exc))
        return None
    log.info("redis_connected", kind=handle.kind, url=handle.url)
    return handle
