"""``GET /v1/models``: the policy's route aliases and models, in OpenAI's list shape."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from router.api.responses import JSONBytesResponse
from router.services import Services


async def list_models(request: Request) -> Response:
    """List route aliases first, then models."""
    services: Services = request.app.state.services
    loaded = services.policies.current
    created = int(loaded.files[0].stat().st_mtime) if loaded.files else 0
    data: list[dict[str, Any]] = [
        {
            "id": r.alias,
            "object": "model",
            "created": created,
            "owned_by": "hybrid-router",
            "x_router": {"kind": "route", "tiers": [t.name for t in r.tiers]},
        }
        for r in loaded.policy.routes
    ]
    data += [
        {
            "id": m.name,
            "object": "model",
            "created": created,
            "owned_by": m.backend,
            "x_router": {"kind": "model", "tier": m.tier, "available": m.available},
        }
        for m in loaded.policy.models
    ]
    return JSONBytesResponse(
        {"object": "list", "data": data}, headers={"x-router-policy": loaded.hash}
    )
