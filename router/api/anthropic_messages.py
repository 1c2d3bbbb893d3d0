"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``: Anthropic's Messages protocol.

An adapter in front of the one chat pipeline (:func:`router.api.endpoint.serve`): the body is
validated and translated by :mod:`router.protocol.messages`, the outcome rendered by
:mod:`router.protocol.messages_render`. The caller's key comes from ``x-api-key`` (what the
Anthropic SDKs send) or a bearer token; ``anthropic-version`` and ``anthropic-beta`` are
accepted and not needed. Every error has Anthropic's shape.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog
from starlette.background import BackgroundTask
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from router.api.body import read_body
from router.api.endpoint import SSE_HEADERS, Call, request_id, serve
from router.api.responses import JSONBytesResponse
from router.budget.admission import check_request
from router.context import RequestContext
from router.errors import ContextLengthExceeded, NotFound, RouterError, Unauthenticated
from router.pipeline.context import ChatOutcome
from router.protocol.chat_request import ChatRequest
from router.protocol.messages import (
    parse_count_tokens_request,
    parse_messages_request,
    to_chat_request,
)
from router.protocol.messages_render import (
    anthropic_events,
    error_body,
    error_type_for,
    message_from_completion,
)
from router.route.capabilities import estimate_prompt_tokens
from router.services import Services

log = structlog.get_logger("router.request")


@dataclass(frozen=True, slots=True)
class MessagesState:
    """What rendering needs from the request: the model it named and the message id."""

    model: str
    message_id: str


def anthropic_error(err: RouterError, headers: dict[str, str]) -> Response:
    """``{"type": "error", "error": {"type", "message"}}`` with the error's status."""
    h = dict(headers)
    h.update(err.headers)
    message = err.message
    if isinstance(err, Unauthenticated) and err.code == "missing_api_key":
        message = "Missing API key: send 'x-api-key: <key>' or 'Authorization: Bearer <key>'."
    if err.param and err.param not in message:
        # Anthropic's error has no ``param``: the message names the field, as Anthropic's do
        message = f"{err.param}: {message}"
    if isinstance(err, ContextLengthExceeded):
        # Anthropic's wording: Claude Code and the SDKs' users match "prompt is too long"
        message = f"prompt is too long: {err.tokens} tokens > {err.limit_tokens} maximum. {message}"
    body = error_body(error_type_for(err), message)
    return JSONBytesResponse(body, status_code=err.status, headers=h)


def authorization(headers: Headers) -> str | None:
    """``x-api-key`` as a bearer token (the Anthropic SDKs' header), else ``Authorization``."""
    key = headers.get("x-api-key")
    if key:
        return f"Bearer {key}"
    return headers.get("authorization")


class MessagesAdapter:
    """Anthropic Messages in front of the chat pipeline."""

    def authorization(self, headers: Headers) -> str | None:
        """See :func:`authorization`."""
        return authorization(headers)

    async def parse(self, body: bytes, call: Call) -> tuple[ChatRequest, MessagesState]:
        """Validate the Messages body and translate it to a chat request."""
        req = parse_messages_request(body)
        return to_chat_request(req), MessagesState(req.model, f"msg_{call.request_id}")

    def render(
        self,
        outcome: ChatOutcome,
        state: MessagesState,
        call: Call,
        headers: dict[str, str],
        background: BackgroundTask | None,
    ) -> Response:
        """A ``Message``, or its event stream."""
        if outcome.stream is not None:
            return StreamingResponse(
                anthropic_events(outcome.stream, state.model, state.message_id),
                media_type="text/event-stream",
                headers={**SSE_HEADERS, **headers},
                background=background,
            )
        assert outcome.completion is not None
        message = message_from_completion(outcome.completion.body, state.model, state.message_id)
        return JSONBytesResponse(message, headers=headers, background=background)

    def error(self, err: RouterError, headers: dict[str, str]) -> Response:
        """Anthropic's error shape."""
        return anthropic_error(err, headers)


MESSAGES = MessagesAdapter()


async def messages(request: Request) -> Response:
    """Answer one Messages request through the chat pipeline."""
    return await serve(request, MESSAGES)


async def count_tokens(request: Request) -> Response:
    """``{"input_tokens": n}`` for a Messages body, counted as the context guard counts: with
    the model's own tokenizer when the body names a model whose tokenizer is known (a route:
    the estimate, since the tier is not chosen yet).

    Authenticated and checked against the key's model list like a request; nothing is routed,
    charged or sent upstream.
    """
    services: Services = request.app.state.services
    loaded = services.policies.current
    policy = loaded.policy
    rid = request_id(request)
    headers = {"x-request-id": rid, "x-router-policy": loaded.hash}
    try:
        principal = await services.auth.authenticate(policy.auth, authorization(request.headers))
        body = await read_body(request, policy.limits.max_body_bytes, policy.limits.body_timeout_s)
        req = to_chat_request(parse_count_tokens_request(body))
        if policy.route(req.model) is None and policy.model(req.model) is None:
            raise NotFound(f"The model '{req.model}' does not exist.", param="model")
        ctx = RequestContext(
            request_id=rid,
            tenant=principal.tenant,
            key_id=principal.key_id,
            team=principal.team,
            started_at=time.perf_counter(),
        )
        check_request(services.keys, req, ctx)
    except RouterError as err:
        log.info("count_tokens_rejected", request_id=rid, status=err.status, param=err.param)
        return anthropic_error(err, headers)
    model = policy.model(req.model) if policy.route(req.model) is None else None
    exact = None
    if model is not None:  # the model's own tokenizer, off the event loop, when it is known
        exact = await asyncio.to_thread(services.tokens.count, model, req)
    return JSONBytesResponse({"input_tokens": input_tokens(req, exact)}, headers=headers)


def input_tokens(req: ChatRequest, prompt_tokens: int | None = None) -> int:
    """The prompt's tokens as the context guard counts them (``prompt_tokens``, from the
    model's own tokenizer, else the estimate), tool definitions included (estimated)."""
    tools = sum(len(t.model_dump_json()) for t in req.tools or ()) // 4
    return (estimate_prompt_tokens(req) if prompt_tokens is None else prompt_tokens) + tools
