"""One HTTP handler for every protocol that the chat pipeline serves.

Each wire protocol (OpenAI Chat Completions, OpenAI Responses, Anthropic Messages) is an
:class:`Adapter` in front of the one pipeline: it finds the caller's credential, turns the body
into a :class:`ChatRequest`, and renders the pipeline's outcome (a whole completion or a chat SSE
stream) and its errors in its own shape. Authentication, body limits, logging, the pipeline,
routing headers and the shadow label are the same for all of them, here.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import structlog
from starlette.background import BackgroundTask
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from router.api.body import read_body
from router.auth import Principal
from router.cache.stage import cache_headers
from router.context import RequestContext
from router.errors import ClientClosed, RouterError, UpstreamError
from router.observability.logcontext import bind_request
from router.pipeline.context import ChatOutcome, response_headers
from router.pipeline.run import run_chat
from router.pipeline.shadow import shadow_task
from router.policy.load import LoadedPolicy
from router.protocol.chat_request import ChatRequest
from router.services import Services

__all__ = ["SSE_HEADERS", "Adapter", "Call", "ChatOutcome", "response_headers", "serve"]

log = structlog.get_logger("router.request")
CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}

StateT = TypeVar("StateT")


def request_id(request: Request) -> str:
    """The client's ``x-request-id`` when it is sane, otherwise a new one."""
    given = request.headers.get("x-request-id")
    if given and CLIENT_REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Call:
    """What an adapter may know about the request it translates."""

    request: Request
    services: Services
    principal: Principal
    request_id: str


class Adapter(Protocol, Generic[StateT]):
    """A wire protocol in front of the chat pipeline.

    ``StateT`` is what the adapter carries from parsing to rendering for one request (for
    example the original request, to echo its fields in the response).
    """

    def authorization(self, headers: Headers) -> str | None:
        """The ``Authorization`` value to authenticate with (``Bearer <key>``), if any."""
        ...

    async def parse(self, body: bytes, call: Call) -> tuple[ChatRequest, StateT]:
        """Validate ``body`` and translate it; raise a 4xx :class:`RouterError` naming the field."""
        ...

    def render(
        self,
        outcome: ChatOutcome,
        state: StateT,
        call: Call,
        headers: dict[str, str],
        background: BackgroundTask | None,
    ) -> Response:
        """The response for a finished outcome (``outcome.completion`` or ``outcome.stream``)."""
        ...

    def error(self, err: RouterError, headers: dict[str, str]) -> Response:
        """The response for ``err`` in this protocol's error shape."""
        ...


async def serve(request: Request, adapter: Adapter[StateT]) -> Response:
    """Authenticate, read, translate, run the pipeline and render one request."""
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
            policy.auth, adapter.authorization(request.headers)
        )
        call = Call(request=request, services=services, principal=principal, request_id=rid)
        limits = policy.limits
        body = await read_body(request, limits.max_body_bytes, limits.body_timeout_s)
        req, state = await adapter.parse(body, call)
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
    except RouterError as err:
        services.observability.rejected(err)  # the pipeline counts those it was given
        return _refused(adapter, err, loaded, rid, started, base_headers)
    try:
        outcome = await run_chat(services, loaded, req, ctx)
    except RouterError as err:
        return _refused(adapter, err, loaded, rid, started, base_headers)
    # Starlette runs a response's background task after its last byte was sent: a shadow
    # label is started only once the client has the whole answer.
    shadow = shadow_task(services, outcome)
    return adapter.render(outcome, state, call, response_headers(outcome), shadow)


def _refused(
    adapter: Adapter[StateT],
    err: RouterError,
    loaded: LoadedPolicy,
    rid: str,
    started: float,
    headers: dict[str, str],
) -> Response:
    """The error response; one log line unless the request was recorded or the client left."""
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
    return adapter.error(err, headers)
