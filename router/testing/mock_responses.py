"""The mock upstream's native ``POST /v1/responses``: the same deterministic replies as its chat
endpoint, in the Responses API's shapes (a ``response`` object, or its typed events).

It stands in for an upstream that speaks Responses itself (``backend: openai_responses``). The
reply is built by the chat mock from the request's chat translation, and rendered with the
gateway's own Responses renderer, whose events the openai SDK's types are tested against.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, NamedTuple

import orjson

from router.errors import InvalidRequest
from router.protocol.responses import parse_responses_request, translate
from router.protocol.responses_render import (
    EventTranslator,
    ResponseMeta,
    chat_events,
    completed_response,
)
from router.testing.mock_config import MockConfig
from router.testing.mock_replies import (
    MockRequestError,
    build_reply,
    completion_body,
    stream_events,
)


class MockResponse(NamedTuple):
    """What the mock answers: a status, a body, and whether the body is an event stream."""

    status: int
    body: bytes
    sse: bool = False


def _error(status: int, message: str, param: str | None) -> MockResponse:
    err = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return MockResponse(status, orjson.dumps({"error": err}))


def responses_reply(
    raw: bytes, config: MockConfig, reply_tokens: int | None = None
) -> MockResponse:
    """The answer to one ``/v1/responses`` body (``previous_response_id`` is not kept)."""
    try:
        req = parse_responses_request(raw)
        translation = translate(req, [])
    except InvalidRequest as exc:
        return _error(400, exc.message, exc.param)
    chat: dict[str, Any] = translation.chat.raw_body()
    try:
        reply = build_reply(chat, config, reply_tokens)
    except MockRequestError as exc:
        return _error(400, exc.message, exc.param)
    meta = ResponseMeta(request=req, translation=translation)
    completion_id, created = "resp-mock" + secrets.token_hex(8), int(time.time())
    if not req.stream:
        completion = completion_body(reply, req.model, completion_id, created)
        return MockResponse(200, orjson.dumps(completed_response(meta, completion)))
    translator = EventTranslator(meta)
    out = translator.start()
    buffer = bytearray()
    for event in stream_events(reply, req.model, completion_id, created, include_usage=True):
        for chunk in chat_events(buffer, event.data):
            if chunk is not None:
                out += translator.chunk(chunk)
    out += translator.finish()
    return MockResponse(200, b"".join(out), sse=True)
