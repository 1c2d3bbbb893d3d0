"""The one place where upstream failures become the gateway's error tree."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from router.errors import (
    StreamInterrupted,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamServerError,
    UpstreamTimeout,
    upstream_error_for_status,
)


def upstream_message(body: bytes) -> str:
    """The ``error.message`` of an OpenAI-style error body, or the body's start."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip() or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if isinstance(data.get("message"), str):
            return str(data["message"])
    return body[:200].decode("utf-8", "replace")


def from_status(status: int, body: bytes, model: str) -> UpstreamError:
    """Translate an upstream HTTP error response."""
    return upstream_error_for_status(
        status, f"Upstream '{model}' returned {status}: {upstream_message(body)}", model=model
    )


def from_exception(exc: BaseException, model: str, *, streaming: bool = False) -> UpstreamError:
    """Translate a transport exception (aiohttp, asyncio timeout, OS error)."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamConnectionError(
            f"Upstream '{model}' did not accept a connection.", model=model
        )
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return UpstreamTimeout(f"Upstream '{model}' timed out.", model=model)
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return UpstreamConnectionError(f"Upstream '{model}' is unreachable: {exc}", model=model)
    if streaming and isinstance(
        exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError | ConnectionError
    ):
        return StreamInterrupted(f"Upstream '{model}' cut the stream: {exc}", model=model)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return UpstreamConnectionError(f"Upstream '{model}' connection failed: {exc}", model=model)
    return UpstreamServerError(f"Upstream '{model}' failed: {type(exc).__name__}", model=model)


def from_litellm(exc: BaseException, model: str) -> UpstreamError:
    """Translate a litellm exception by its HTTP status, falling back to its class name."""
    if isinstance(exc, UpstreamError):
        return exc
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    message = str(getattr(exc, "message", None) or exc)
    if "Timeout" in name:
        return UpstreamTimeout(f"Upstream '{model}' timed out: {message}", model=model)
    if "APIConnectionError" in name and status in (None, 500):
        return UpstreamConnectionError(f"Upstream '{model}' is unreachable: {message}", model=model)
    if isinstance(status, int) and status >= 400:
        return upstream_error_for_status(
            status, f"Upstream '{model}' returned {status}: {message}", model=model
        )
    return from_exception(exc, model)
