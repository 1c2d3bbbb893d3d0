"""Reading request bodies within the policy's size limit and time limit."""

from __future__ import annotations

import asyncio

import structlog
from starlette.requests import ClientDisconnect, Request

from router.errors import ClientClosed, InvalidRequest, PayloadTooLarge, RequestTimeout

log = structlog.get_logger("router.request")
DEFAULT_TIMEOUT_S = 30.0
"""The policy's default ``limits.body_timeout_s``."""


async def read_body(
    request: Request, max_bytes: int, timeout_s: float = DEFAULT_TIMEOUT_S
) -> bytes:
    """The whole body, or :class:`PayloadTooLarge` (413) as soon as it exceeds ``max_bytes``.

    A body not received within ``timeout_s`` seconds raises :class:`RequestTimeout` (408): a
    client that declares a body and never sends it must not hold a connection and a task for
    ever. A client that leaves mid-body raises :class:`ClientClosed` after one log line.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidRequest("Invalid Content-Length header.", param="content-length") from None
        if size > max_bytes:
            raise PayloadTooLarge(
                f"The request body is {size} bytes; this gateway accepts at most {max_bytes}.",
                param="body",
            )
    parts: list[bytes] = []
    total = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for part in request.stream():
                total += len(part)
                if total > max_bytes:
                    raise PayloadTooLarge(
                        f"The request body exceeds this gateway's limit of {max_bytes} bytes.",
                        param="body",
                    )
                parts.append(part)
    except TimeoutError:
        raise RequestTimeout(
            f"The request body was not received within {timeout_s:g} s "
            f"({total} of {declared or 'unknown'} bytes).",
            param="body",
        ) from None
    except ClientDisconnect:
        log.info("client_disconnected", path=request.url.path, received_bytes=total,
                 declared_bytes=declared)  # fmt: skip
        raise ClientClosed("The client closed the connection mid-body.", param="body") from None
    return b"".join(parts)
