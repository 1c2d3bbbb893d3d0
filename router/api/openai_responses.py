"""``/v1/responses``: the OpenAI Responses API as an adapter in front of the chat pipeline.

``POST`` translates the request to chat completions (:mod:`router.protocol.responses`), runs it
through :func:`router.api.endpoint.serve` like every other protocol, and renders the answer as
a ``response`` object or its typed stream events (:mod:`router.protocol.responses_render`).
With ``store`` (the default) the response is kept per tenant in Redis
(:mod:`router.conversations.store`) before the client sees it complete, so a follow-up
with ``previous_response_id`` finds it on any replica. ``GET`` and ``DELETE`` read and remove
stored responses of the caller's own tenant.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import structlog
from starlette.background import BackgroundTask
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from router.api.endpoint import SSE_HEADERS, Call, request_id, serve
from router.api.responses import JSONBytesResponse, error_response
from router.conversations.store import ResponseStore, StoredResponse
from router.errors import NotFound, RouterError, ServiceUnavailable
from router.pipeline.context import ChatOutcome
from router.protocol.chat_request import ChatRequest
from router.protocol.responses import parse_responses_request, translate
from router.protocol.responses_render import (
    EventTranslator,
    ResponseMeta,
    assistant_message,
    chat_events,
    completed_response,
)
from router.services import Services

log = structlog.get_logger("router.responses")
IGNORED_HEADER = "x-router-ignored"
"""Names the request fields the gateway did not act on (hosted tools a chat model cannot run)."""


@dataclass(frozen=True, slots=True)
class ResponsesState:
    """What rendering needs of the parsed request."""

    meta: ResponseMeta
    tenant: str
    store: ResponseStore | None
    """Where to keep the response; None when the client sent ``store: false``."""


def response_store(services: Services) -> ResponseStore | None:
    """The store of responses on the gateway's Redis; None without Redis."""
    if services.redis is None:
        return None
    return ResponseStore(services.redis.client, services.settings.responses_ttl_s)


async def keep(state: ResponsesState, response: dict[str, Any]) -> None:
    """Store ``response`` with its conversation; a Redis failure is logged, never raised."""
    if state.store is None:
        return
    messages = list(state.meta.translation.history)
    answer = assistant_message(response["output"])
    if answer is not None:
        messages.append(answer)
    try:
        await state.store.put(state.tenant, StoredResponse(response=response, messages=messages))
    except Exception as exc:  # the answer still reaches the client; only the follow-up fails
        log.warning("response_store_failed", response_id=response["id"], error=repr(exc))


class StoredJSONResponse(JSONBytesResponse):
    """A JSON response that stores the response object before its first byte is sent."""

    def __init__(
        self,
        content: dict[str, Any],
        state: ResponsesState,
        headers: dict[str, str],
        background: BackgroundTask | None,
    ) -> None:
        super().__init__(content, headers=headers, background=background)
        self._content = content
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Store, then send."""
        await keep(self._state, self._content)
        await super().__call__(scope, receive, send)


async def response_events(
    chat_stream: AsyncIterator[bytes], state: ResponsesState
) -> AsyncIterator[bytes]:
    """The Responses events for a chat SSE stream; the response is stored before its last event."""
    translator = EventTranslator(state.meta)
    buffer = bytearray()
    last: list[bytes] | None = None
    try:
        for event in translator.start():
            yield event
        async for data in chat_stream:
            for chunk in chat_events(buffer, data):
                if chunk is None:  # [DONE]: the pipeline's stream ends right after it
                    continue
                if isinstance(chunk.get("error"), dict) and not chunk.get("choices"):
                    last = translator.fail(chunk["error"])  # an upstream failure mid-stream
                elif last is None:
                    for event in translator.chunk(chunk):
                        yield event
        if last is None:
            last = translator.finish()
        assert translator.final is not None
        await keep(state, translator.final)  # before the client can name it in a follow-up
        for event in last:
            yield event
    finally:
        # On a client that went away too: closing the pipeline's stream runs its accounting.
        aclose = getattr(chat_stream, "aclose", None)
        if aclose is not None:
            await aclose()


class ResponsesAdapter:
    """OpenAI Responses in front of the chat pipeline."""

    def authorization(self, headers: Headers) -> str | None:
        """The ``Authorization`` header as sent."""
        return headers.get("authorization")

    async def parse(self, body: bytes, call: Call) -> tuple[ChatRequest, ResponsesState]:
        """Validate, load the ``previous_response_id`` chain, translate to chat."""
        req = parse_responses_request(body)
        if req.extra_fields():  # fields outside the Responses API (serve() logs the chat ones)
            log.info(
                "responses_extra_fields", request_id=call.request_id, fields=req.extra_fields()
            )
        store = response_store(call.services)
        tenant = call.principal.tenant
        prior: list[dict[str, Any]] = []
        if req.previous_response_id is not None:
            if store is None:
                raise ServiceUnavailable(
                    "previous_response_id needs the response store (Redis), which is down.",
                    param="previous_response_id",
                )
            try:
                stored = await store.get(tenant, req.previous_response_id)
            except Exception as exc:
                raise ServiceUnavailable(
                    f"The response store could not be read: {exc}", param="previous_response_id"
                ) from None
            if stored is None:
                raise NotFound(
                    f"Previous response with id '{req.previous_response_id}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            prior = stored.messages
        translation = translate(req, prior)
        if translation.ignored:
            log.info("responses_ignored", request_id=call.request_id, fields=translation.ignored)
        meta = ResponseMeta(request=req, translation=translation)
        state = ResponsesState(meta=meta, tenant=tenant, store=store if req.stores else None)
        return translation.chat, state

    def render(
        self,
        outcome: ChatOutcome,
        state: ResponsesState,
        call: Call,
        headers: dict[str, str],
        background: BackgroundTask | None,
    ) -> Response:
        """A ``response`` object, or the Responses event stream."""
        if state.meta.translation.ignored:
            headers = {**headers, IGNORED_HEADER: ", ".join(state.meta.translation.ignored)}
        if outcome.stream is not None:
            return StreamingResponse(
                response_events(outcome.stream, state),
                media_type="text/event-stream",
                headers={**SSE_HEADERS, **headers},
                background=background,
            )
        assert outcome.completion is not None
        body = completed_response(state.meta, outcome.completion.body)
        return StoredJSONResponse(body, state, headers, background)

    def error(self, err: RouterError, headers: dict[str, str]) -> Response:
        """OpenAI's error shape (the Responses API uses the same one)."""
        return error_response(err, headers)


RESPONSES = ResponsesAdapter()


async def create_response(request: Request) -> Response:
    """``POST /v1/responses``."""
    return await serve(request, RESPONSES)


async def _stored(request: Request) -> tuple[ResponseStore, str, str, dict[str, str]]:
    """Authenticate a GET or DELETE; the store, tenant, response id and base headers."""
    services: Services = request.app.state.services
    loaded = services.policies.current
    headers = {"x-request-id": request_id(request), "x-router-policy": loaded.hash}
    principal = await services.auth.authenticate(
        loaded.policy.auth, request.headers.get("authorization")
    )
    store = response_store(services)
    if store is None:
        raise ServiceUnavailable("The response store (Redis) is not available.")
    return store, principal.tenant, request.path_params["response_id"], headers


def _not_found(response_id: str) -> NotFound:
    return NotFound(
        f"Response with id '{response_id}' not found.", param="response_id", code="not_found"
    )


async def get_response(request: Request) -> Response:
    """``GET /v1/responses/{response_id}``: a stored response of the caller's tenant."""
    headers = {"x-request-id": request_id(request)}
    try:
        store, tenant, response_id, headers = await _stored(request)
        stored = await store.get(tenant, response_id)
        if stored is None:
            raise _not_found(response_id)
    except RouterError as err:
        return error_response(err, headers)
    return JSONBytesResponse(stored.response, headers=headers)


async def delete_response(request: Request) -> Response:
    """``DELETE /v1/responses/{response_id}``: forget a stored response of the caller's tenant."""
    headers = {"x-request-id": request_id(request)}
    try:
        store, tenant, response_id, headers = await _stored(request)
        if not await store.delete(tenant, response_id):
            raise _not_found(response_id)
    except RouterError as err:
        return error_response(err, headers)
    body = {"id": response_id, "object": "response", "deleted": True}
    return JSONBytesResponse(body, headers=headers)
