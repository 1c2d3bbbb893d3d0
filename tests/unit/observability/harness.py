"""The in-process gateway with seam doubles, for the observability tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from router.app import create_app
from router.auth import Authenticator
from router.backends.registry import BackendRegistry
from router.backends.scripted import ScriptedBackend
from router.classify.fixed import FixedClassifier
from router.policy.store import PolicyStore
from router.protocol.chat_response import Usage
from router.services import Services
from router.settings import Settings

MSG = [{"role": "user", "content": "hello"}]


class Harness:
    """The app, its services and its doubles."""

    def __init__(
        self,
        services: Services,
        client: httpx.AsyncClient,
        backend: ScriptedBackend,
        classifier: FixedClassifier,
    ) -> None:
        self.services = services
        self.client = client
        self.backend = backend
        self.classifier = classifier

    async def post(self, body: object, **headers: str) -> httpx.Response:
        """POST a chat completion."""
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return await self.client.post("/v1/chat/completions", content=content, headers=headers)

    async def chat(self, **fields: object) -> httpx.Response:
        """A chat completion with ``MSG`` and ``model=auto`` unless given."""
        return await self.post({"model": "auto", "messages": MSG, **fields})

    async def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Scrape ``/metrics``: ``{(sample name, sorted labels): value}``."""
        r = await self.client.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for fam in text_string_to_metric_families(r.text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """The sample ``name`` with exactly ``labels`` (0.0 when absent)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def harness(
    path: Path, backend: ScriptedBackend | None = None, score: float = 0.1
) -> AsyncIterator[Harness]:
    """Build the app on the policy at ``path`` and yield a client for it."""
    settings = Settings(policy_path=path, access_log=True)
    store = PolicyStore.open(path)
    http = aiohttp.ClientSession()
    registry = BackendRegistry(http)
    backend = backend or ScriptedBackend(reply="hi there friend", usage=Usage(1000, 500))
    registry.register("openai_compat", backend)
    classifier = FixedClassifier(score=score)
    services = Services(
        settings, store, http, registry, classifier, Authenticator(None), ready=True
    )
    app = create_app(settings, store)
    app.state.services = services
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield Harness(services, client, backend, classifier)
    await services.observability.aclose()
    await http.close()
