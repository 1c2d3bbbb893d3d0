"""``GET /openapi.json``: the document of :mod:`router.protocol.openapi`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from router.api.embeddings import EmbeddingsRequest
from router.api.responses import JSONBytesResponse
from router.protocol.openapi import openapi_document


async def openapi(request: Request) -> Response:
    """Serve the document."""
    return JSONBytesResponse(openapi_document(embeddings=EmbeddingsRequest))
