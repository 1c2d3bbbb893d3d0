"""``GET /healthz`` (the process is alive) and ``GET /readyz`` (it can serve traffic)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from router.api.responses import JSONBytesResponse
from router.services import Services


async def healthz(request: Request) -> Response:
    """Liveness: the event loop answers."""
    return JSONBytesResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: services are up and a valid policy is loaded."""
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None or not services.ready:
        return JSONBytesResponse({"status": "starting"}, status_code=503)
    store = services.policies
    checks: dict[str, object] = {
        "policy": {
            "hash": store.current.hash,
            "reloads": store.reloads,
            "failed_reloads": store.failed_reloads,
            "last_error": store.last_error,
        },
        "classifier": type(services.classifier).__name__,
    }
    if services.learning is not None:  # the promoted head this replica serves, if any
        checks["learning"] = {
            "head": services.learning.serving or "policy",
            "classifier_source": getattr(services.classifier, "source", None),
        }
    local = services.backends.local
    if local is not None:
        checks["local_models"] = {
            "ready": local.ready,
            "loading": sorted(local.loading),
            "errors": local.errors,
        }
        if local.loading:  # readiness waits for the local models to load
            return JSONBytesResponse({"status": "loading", "checks": checks}, status_code=503)
    redis = services.redis  # reported, not required: without it the cache misses
    checks["redis"] = {
        "ok": await redis.ping() if redis is not None else False,
        "kind": redis.kind if redis is not None else None,
    }
    return JSONBytesResponse({"status": "ready", "checks": checks})
