"""``GET /healthz`` (the process is alive) and ``GET /readyz`` (it can serve traffic).

``/healthz`` is about the process only (its event loop answers): a liveness probe must not
restart a replica because Redis is down. ``/readyz`` answers 503 while the replica cannot
serve as its policy promises:

* services starting, or the local models still loading;
* the ledger spool left by an earlier run not yet replayed into Redis (``replaying_spool``);
* ``on_store_error: fail_closed``, a budget or virtual keys in the policy, and Redis does not
  answer ``PING`` within 1 s (``redis_unreachable``): every budgeted request would get a 503;
* the ledger spool is full (``spool_full``): a record could no longer be kept safely.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from router.api.responses import JSONBytesResponse
from router.policy.schema import Policy
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
    redis = services.redis
    redis_ok = await redis.ping() if redis is not None else False
    checks["redis"] = {"ok": redis_ok, "kind": redis.kind if redis is not None else None}
    spool = services.ledger.spool if services.ledger is not None else None
    if spool is not None:
        checks["ledger_spool"] = {
            "bytes": spool.size_bytes,
            "max_bytes": spool.max_bytes,
            "pending": spool.pending,
            "full": spool.full,
        }
    status = "ready"
    upkeep = services.upkeep
    if upkeep is not None and not upkeep.started:
        status = "replaying_spool"
    elif not redis_ok and _needs_redis(store.current.policy):
        status = "redis_unreachable"  # fail_open replicas keep serving (their allowance)
    elif spool is not None and spool.full:
        status = "spool_full"
    code = 200 if status == "ready" else 503
    return JSONBytesResponse({"status": status, "checks": checks}, status_code=code)


def _needs_redis(policy: Policy) -> bool:
    """Whether this policy refuses requests without Redis: ``fail_closed`` with a budget or
    virtual keys (whose budgets and rate limits live there)."""
    b = policy.budgets
    limited = b.global_ is not None or bool(b.teams) or policy.auth == "keys"
    return limited and b.on_store_error == "fail_closed"
