"""One HTTP exchange with an OpenAI-style upstream, shared by the backends that speak its wire.

``openai_compat`` (``/chat/completions``), ``openai_responses`` (``/responses``) and hosted
embeddings (``/embeddings``) address, authenticate and time their requests the same way, and
turn transport failures and non-200 answers into the gateway's errors the same way
(:mod:`router.backends.translate`); this module is that common part. What a body means, and
retries, stay with the callers.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from router.backends.base import Target
from router.backends.translate import from_exception, from_status
from router.errors import UpstreamServerError
from router.policy.schema import ModelSpec, Timeouts


def request_headers(target: ModelSpec) -> dict[str, str]:
    """Headers for ``target``: its credential and any configured extras."""
    headers = {"content-type": "application/json", **target.headers}
    if target.api_key is not None:
        headers["authorization"] = f"Bearer {target.api_key.get_secret_value()}"
    return headers


def endpoint_url(target: ModelSpec, path: str) -> str:
    """``target``'s endpoint with ``path`` (such as ``/chat/completions``) appended.

    Raises :class:`~router.errors.UpstreamServerError` when the model has no endpoint.
    """
    if not target.endpoint:
        raise UpstreamServerError(f"Model '{target.name}' has no endpoint.", model=target.name)
    return target.endpoint.rstrip("/") + path


def client_timeout(connect_s: float) -> aiohttp.ClientTimeout:
    """aiohttp's timeout for one request: ``connect_s`` for the connect phase, nothing more."""
    # The total deadline is enforced with asyncio.timeout around each call; aiohttp only
    # bounds the connect phase.
    return aiohttp.ClientTimeout(total=None, sock_connect=connect_s, connect=connect_s)


async def exchange(
    session: aiohttp.ClientSession, model: ModelSpec, timeouts: Timeouts, path: str, content: bytes
) -> tuple[int, bytes]:
    """POST ``content`` (JSON) to ``model``'s ``path``; the status and the whole answer.

    The exchange, reading included, is bounded by ``timeouts.total_s``. Exceptions come out
    untranslated, for callers that decide about retries first.
    """
    async with asyncio.timeout(timeouts.total_s):
        async with session.post(
            endpoint_url(model, path),
            data=content,
            headers=request_headers(model),
            timeout=client_timeout(timeouts.connect_s),
        ) as resp:
            return resp.status, await resp.read()


async def post_for_body(
    session: aiohttp.ClientSession, target: Target, path: str, body: dict[str, Any]
) -> bytes:
    """POST ``body`` as JSON to ``target``'s ``path``; the whole answer once its status is 200.

    As :func:`exchange`, with transport failures raised through
    :func:`~router.backends.translate.from_exception` and other statuses through
    :func:`~router.backends.translate.from_status`.
    """
    content = orjson.dumps(body)
    try:
        status, raw = await exchange(session, target.model, target.timeouts, path, content)
    except Exception as exc:
        raise from_exception(exc, target.name) from exc
    if status != 200:
        raise from_status(status, raw, target.name)
    return raw


def json_answer(raw: bytes, model: str) -> Any:
    """``raw`` parsed as JSON; :class:`~router.errors.UpstreamServerError` when it is not."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamServerError(
            f"Upstream '{model}' returned a body that is not JSON.", model=model
        ) from exc


async def open_stream(
    session: aiohttp.ClientSession, target: Target, path: str, body: dict[str, Any]
) -> aiohttp.ClientResponse:
    """POST ``body`` as JSON to ``target``'s ``path``; the response, unread, once its status is
    200. The caller reads the stream and must release the response.

    Sending and waiting for the status are bounded by ``first_token_s`` (else ``total_s``).
    Failures raise as for :func:`post_for_body`; a non-200 response is read (within
    ``total_s``, for its error message) and released before that.
    """
    timeouts, model = target.timeouts, target.model
    content = orjson.dumps(body)
    try:
        async with asyncio.timeout(timeouts.first_token_s or timeouts.total_s):
            resp = await session.post(
                endpoint_url(model, path),
                data=content,
                headers=request_headers(model),
                timeout=client_timeout(timeouts.connect_s),
            )
    except Exception as exc:
        raise from_exception(exc, target.name) from exc
    if resp.status != 200:
        try:
            async with asyncio.timeout(timeouts.total_s):
                error_body = await resp.read()
        except Exception:
            # the status alone still makes the error; a body that will not come only loses
            # its message
            error_body = b""
        finally:
            resp.release()
        raise from_status(resp.status, error_body, target.name)
    return resp
