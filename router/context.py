"""Per-request facts that flow through the pipeline (who is asking, and their hints)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class RequestContext:
    """Who sent a request and how they asked the router to treat it."""

    request_id: str
    tenant: str = "default"
    """The cache and budget scope: the key's tenant, or ``default`` when auth is off."""
    key_id: str | None = None
    team: str | None = None
    route_override: str | None = None
    """The ``x-router-route`` header: a tier name (``local``, ``hosted``) or a model name."""
    hint: str | None = None
    """The ``x-router-hint`` header, matched by policy rules."""
    cache_headers: dict[str, str] = field(default_factory=dict)
    """The request's ``Cache-Control`` and ``x-router-cache-mode`` headers."""
    started_at: float = field(default_factory=time.perf_counter)
    """``time.perf_counter()`` when the request arrived, in seconds."""
