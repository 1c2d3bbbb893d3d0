"""Reading request bodies within the policy's size limit."""

from __future__ import annotations

from starlette.requests import Request

from router.errors import InvalidRequest, PayloadTooLarge


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, or :class:`PayloadTooLarge` (413) as soon as it exceeds ``max_bytes``."""
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
    async for part in request.stream():
        total += len(part)
        if total > max_bytes:
            raise PayloadTooLarge(
                f"The request body exceeds this gateway's limit of {max_bytes} bytes.",
                param="body",
            )
        parts.append(part)
    return b"".join(parts)
