"""``POST /v1/chat/completions``."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from router.api.body import read_body
from router.api.protocol import parse_chat_request
from router.api.responses import JSONBytesResponse, error_response
from router.cache.stage import cache_headers
from router.context import RequestContext
from router.errors import ClientClosed, RouterError, UpstreamError
from router.observability.logcontext import bind_request
from router.pipeline import response_headers, run_chat
from router.services import Services

log = structlog.get_logger("router.request")
CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def request_id(request: Request) -> str:
    """The client's ``x-request-id`` when it is sane, otherwise a new one."""
    given = request.headers.get("x-request-id")
    if given and CLIENT_REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


async def chat_completions(request: Request) -> Response:
    """Validate, authenticate, route and answer one chat completion request."""
    services: Services = request.app.state.services
    loaded = services.policies.current
    policy = loaded.policy
    rid = request_id(request)
    bind_request(rid, loaded.hash)  # every log line of this request carries both
    # errors are never served from the cache, so they are misses too
    base_headers = {"x-request-id": rid, "x-router-policy": loaded.hash, "x-router-cache": "miss"}
    started = time.perf_counter()
    try:
        principal = await services.auth.authenticate(
            policy.auth, request.headers.get("authorization")
        )
        limits = policy.limits
        body = await read_body(request, limits.max_body_bytes, limits.body_timeout_s)
        req = parse_chat_request(body)
        extras = req.extra_fields()
        if extras:
            log.info("extra_fields", request_id=rid, policy_hash=loaded.hash, fields=extras)
        ctx = RequestContext(
            request_id=rid,
            tenant=principal.tenant,
            key_id=principal.key_id,
            team=principal.team,
            route_override=request.headers.get("x-router-route") or None,
            hint=request.headers.get("x-router-hint") or None,
            cache_headers=cache_headers(request.headers),
            started_at=started,
        )
        outcome = await run_chat(services, loaded, req, ctx)
    except RouterError as err:
        services.observability.rejected(err)  # unless the pipeline counted it
        # upstream failures are recorded by the pipeline; a client gone mid-body by read_body
        if not isinstance(err, UpstreamError | ClientClosed):
            log.info(
                "request_rejected",
                request_id=rid,
                policy_hash=loaded.hash,
                status=err.status,
                code=err.code,
                param=err.param,
                message=err.message,
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
            )
        return error_response(err, base_headers)
    headers = response_headers(outcome)
    # Starlette runs a response's background task after its last byte was sent: a shadow
    # label is started only once the client has the whole answer.
    shadow = services.shadow_task(outcome)
    if outcome.stream is not None:
        return StreamingResponse(
            outcome.stream,
            media_type="text/event-stream",
            headers={**SSE_HEADERS, **headers},
            background=shadow,
        )
    assert outcome.completion is not None
    return JSONBytesResponse(outcome.completion.body, headers=headers, background=shadow)
