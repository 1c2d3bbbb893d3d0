"""``POST /v1/chat/completions``: the OpenAI Chat Completions protocol."""

from __future__ import annotations

from starlette.background import BackgroundTask
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from router.api.endpoint import SSE_HEADERS, Call, serve
from router.api.responses import JSONBytesResponse, error_response
from router.errors import RouterError
from router.pipeline.context import ChatOutcome
from router.protocol.chat_request import ChatRequest, parse_chat_request


class ChatAdapter:
    """Chat Completions is the pipeline's own protocol: no translation either way."""

    def authorization(self, headers: Headers) -> str | None:
        """The ``Authorization`` header as sent."""
        return headers.get("authorization")

    async def parse(self, body: bytes, call: Call) -> tuple[ChatRequest, None]:
        """Validate the body as an OpenAI chat request."""
        return parse_chat_request(body), None

    def render(
        self,
        outcome: ChatOutcome,
        state: None,
        call: Call,
        headers: dict[str, str],
        background: BackgroundTask | None,
    ) -> Response:
        """The completion's JSON, or its SSE stream, as the pipeline produced them."""
        if outcome.stream is not None:
            return StreamingResponse(
                outcome.stream,
                media_type="text/event-stream",
                headers={**SSE_HEADERS, **headers},
                background=background,
            )
        assert outcome.completion is not None
        return JSONBytesResponse(outcome.completion.body, headers=headers, background=background)

    def error(self, err: RouterError, headers: dict[str, str]) -> Response:
        """OpenAI's error shape."""
        return error_response(err, headers)


CHAT = ChatAdapter()


async def chat_completions(request: Request) -> Response:
    """Validate, authenticate, route and answer one chat completion request."""
    return await serve(request, CHAT)
