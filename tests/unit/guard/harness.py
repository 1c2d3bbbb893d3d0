"""An in-process gateway with a guard section in its policy and a scripted backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import httpx
import orjson

from router.app import create_app
from router.auth import Authenticator
from router.backends.registry import BackendRegistry
from router.backends.scripted import ScriptedBackend
from router.classify.fixed import FixedClassifier
from router.policy.store import PolicyStore
from router.protocol.chat_response import Usage
from router.services import Services
from router.settings import Settings
from tests.unit.core.policy_text import write_policy

MODELS = """
version: 1
auth: none
prices_file: prices.yaml
defaults:
  retry: {attempts: 1, backoff_s: 0, max_backoff_s: 0}
models:
  - name: small
    backend: openai_compat
    tier: local
    endpoint: http://127.0.0.1:9/v1
    api_key: ${SMALL_KEY:-local-key}
    capabilities: {tools: false, json_schema: false, context_window: 4000}
    fallbacks: [big]
  - name: onprem
    backend: openai_compat
    tier: onprem-gpu
    endpoint: http://127.0.0.1:9/v1
    capabilities: {tools: true, json_schema: true, context_window: 4000}
    price: {input_usd_per_mtok: 0.1, output_usd_per_mtok: 0.2}
  - name: big
    backend: openai_compat
    tier: hosted
    endpoint: http://127.0.0.1:9/v1
    api_key: ${BIG_KEY:-test-secret}
    capabilities: {tools: true, json_schema: true, vision: true, context_window: 100000}
    fallbacks: [backup]
  - name: backup
    backend: openai_compat
    endpoint: http://127.0.0.1:9/v1
    price: {input_usd_per_mtok: 3, output_usd_per_mtok: 15}
    capabilities: {tools: true, json_schema: true, vision: true, context_window: 100000}
routes:
  - alias: auto
    tiers:
      - {name: local, model: small}
      - {name: hosted, model: big, min_score: 0.5}
  - alias: private
    tiers:
      - {name: local, model: small}
      - {name: hosted, model: big, min_score: 0.5}
"""


def policy_text(guard: str, models: str = MODELS) -> str:
    """The test policy with ``guard`` (YAML, already indented under ``guard:``) appended."""
    return models + ("guard:\n" + guard if guard else "")


class Gateway:
    """The app behind an ASGI transport, its scripted backend and its classifier."""

    def __init__(
        self, client: httpx.AsyncClient, backend: ScriptedBackend, classifier: FixedClassifier
    ) -> None:
        self.client, self.backend, self.classifier = client, backend, classifier

    async def post(self, body: object, **headers: str) -> httpx.Response:
        """POST a chat completion."""
        return await self.client.post(
            "/v1/chat/completions", content=orjson.dumps(body), headers=headers
        )

    def sent(self) -> list[tuple[str, str]]:
        """(model, serialised raw body) of every upstream call so far."""
        return [(m, orjson.dumps(r.raw_body()).decode()) for m, r in self.backend.calls]


async def gateway(
    tmp: Path, guard: str, score: float = 0.9, models: str = MODELS
) -> AsyncIterator[Gateway]:
    """Yield a :class:`Gateway` for a policy with ``guard``."""
    path = write_policy(tmp, policy_text(guard, models))
    settings = Settings(policy_path=path, access_log=False)
    store = PolicyStore.open(path)
    http = aiohttp.ClientSession()
    registry = BackendRegistry(http)
    backend = ScriptedBackend(reply="ok", usage=Usage(10, 5))
    registry.register("openai_compat", backend)
    classifier = FixedClassifier(score=score)
    services = Services(
        settings, store, http, registry, classifier, Authenticator(None), ready=True
    )
    app = create_app(settings, store)
    app.state.services = services
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield Gateway(client, backend, classifier)
    finally:
        await http.close()


def events(text: str) -> list[dict[str, object]]:
    """The JSON events of an SSE body (``[DONE]`` left out)."""
    out = []
    for block in text.split("\n\n"):
        if block.startswith("data: ") and block != "data: [DONE]":
            out.append(orjson.loads(block[6:]))
    return out


def streamed_text(text: str) -> str:
    """The content an SSE body spells out."""
    parts = []
    for ev in events(text):
        for choice in ev.get("choices") or []:  # type: ignore[attr-defined]
            parts.append(choice["delta"].get("content") or "")
    return "".join(parts)
