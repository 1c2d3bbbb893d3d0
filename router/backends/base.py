"""The Backend seam: the protocol every model client implements (its results are
:mod:`router.protocol.chat_response`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from router.policy.schema import ModelSpec, Policy
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk, Completion


class Backend(Protocol):
    """A client for one kind of upstream (``openai_compat``, ``litellm``, ``local``).

    Implementations raise only :class:`router.errors.UpstreamError` subclasses, translated in
    one place per backend, and never retry on their own: retries and fallbacks belong to
    :mod:`router.backends.calls`.
    """

    async def complete(self, req: ChatRequest, target: ModelSpec, policy: Policy) -> Completion:
        """Call ``target`` and return the whole completion."""
        ...

    def stream(self, req: ChatRequest, target: ModelSpec, policy: Policy) -> AsyncIterator[Chunk]:
        """Call ``target`` and yield its chunks as they arrive, the usage chunk included."""
        ...

    async def aclose(self) -> None:
        """Release connections and workers."""
        ...
