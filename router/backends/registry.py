"""Which Backend serves which model kind; backends are built once and shared."""

from __future__ import annotations

import aiohttp
import structlog

from router.backends.base import Backend
from router.backends.local import LocalBackend
from router.backends.openai_compat import OpenAICompatBackend
from router.errors import ServiceUnavailable
from router.policy.schema import ModelSpec, Policy

log = structlog.get_logger(__name__)


class BackendRegistry:
    """Holds one backend per kind. ``prepare`` builds the kinds a policy needs, off the hot
    path (litellm takes seconds to import)."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self._http = http
        self._backends: dict[str, Backend] = {"openai_compat": OpenAICompatBackend(http)}

    def register(self, kind: str, backend: Backend) -> None:
        """Install ``backend`` for ``kind`` (tests install doubles this way)."""
        self._backends[kind] = backend

    def prepare(self, policy: Policy) -> None:
        """Build every backend kind ``policy`` uses and that is not built yet. Blocking."""
        kinds = {m.backend for m in policy.models}
        if "litellm" in kinds and "litellm" not in self._backends:
            from router.backends.litellm_backend import LiteLLMBackend

            self._backends["litellm"] = LiteLLMBackend()
            log.info("backend_ready", kind="litellm")
        if "openai_responses" in kinds and "openai_responses" not in self._backends:
            from router.backends.openai_responses import OpenAIResponsesBackend

            self._backends["openai_responses"] = OpenAIResponsesBackend(self._http)
        if "local" in kinds and "local" not in self._backends:
            from router.backends.local import LocalBackend

            self._backends["local"] = LocalBackend()

    @property
    def local(self) -> LocalBackend | None:
        """The in-process model backend, when the policy has local models."""
        backend = self._backends.get("local")
        return backend if isinstance(backend, LocalBackend) else None

    async def start_local(self, policy: Policy) -> None:
        """Load (or reload) the policy's local models, off the event loop; never raises."""
        local = self.local
        if local is None:
            return
        try:
            await local.start(policy)
        except Exception as exc:  # a model that cannot load is reported by /readyz
            log.error("local_models_failed", error=repr(exc))

    def for_model(self, model: ModelSpec) -> Backend:
        """The backend that serves ``model``."""
        backend = self._backends.get(model.backend)
        if backend is None:
            raise ServiceUnavailable(
                f"No backend of kind '{model.backend}' is loaded for model '{model.name}'.",
                code="backend_unavailable",
            )
        return backend

    async def aclose(self) -> None:
        """Close every backend."""
        for b in self._backends.values():
            await b.aclose()
