"""The one container of long-lived objects, built in the app's lifespan (no module globals)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import httpx
import structlog
from httpx_aiohttp import AiohttpTransport

from router.auth import Authenticator
from router.backends.registry import BackendRegistry
from router.classify.base import Classifier
from router.classify.heuristic import HeuristicClassifier
from router.policy.store import PolicyStore
from router.settings import Settings

log = structlog.get_logger(__name__)


def build_http_client(max_connections: int) -> httpx.AsyncClient:
    """The pooled upstream client: httpx's API over aiohttp's transport.

    httpx's own pool costs most of the latency budget under concurrency (httpx issue #3215;
    see docs/performance.md), aiohttp's connector does not.
    """
    limits = httpx.Limits(max_connections=max_connections, keepalive_expiry=30.0)
    transport = AiohttpTransport(limits=limits, trust_env=False)
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(connect=10.0, read=None, write=None, pool=None),
    )


@dataclass
class Services:
    """Everything a request needs that outlives it."""

    settings: Settings
    policies: PolicyStore
    http: httpx.AsyncClient
    backends: BackendRegistry
    classifier: Classifier
    auth: Authenticator
    counters: Counter[str] = field(default_factory=Counter)
    ready: bool = False

    @classmethod
    async def start(cls, settings: Settings, policies: PolicyStore | None = None) -> Services:
        """Load the policy and build clients, backends and the classifier."""
        store = policies or PolicyStore.open(settings.policy_path)
        http = build_http_client(settings.upstream_max_connections)
        backends = BackendRegistry(http)
        await asyncio.to_thread(backends.prepare, store.current.policy)
        services = cls(
            settings=settings,
            policies=store,
            http=http,
            backends=backends,
            classifier=HeuristicClassifier(),
            auth=Authenticator(settings.master_key),
        )
        store.on_reload = services._on_policy_reload
        store.start(settings.policy_poll_s)
        services.ready = True
        log.info("services_ready", policy_hash=store.current.hash)
        return services

    def _on_policy_reload(self) -> None:
        self.backends.prepare(self.policies.current.policy)

    async def aclose(self) -> None:
        """Stop background work and close clients."""
        self.ready = False
        await self.policies.stop()
        await self.classifier.aclose()
        await self.backends.aclose()
        await self.http.aclose()
