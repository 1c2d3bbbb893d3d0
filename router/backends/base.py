"""The Backend seam: the protocol every model client implements (its results are
:mod:`router.protocol.chat_response`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from router.policy.schema import ModelSpec, Policy, Timeouts
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk, Completion


@dataclass(frozen=True, slots=True)
class Target:
    """One model to call, with the policy's timeouts for it resolved (the model's own, else
    the policy's defaults), so that a backend needs nothing but the request and its target."""

    model: ModelSpec
    timeouts: Timeouts

    @property
    def name(self) -> str:
        """The policy name of the model."""
        return self.model.name

    @classmethod
    def of(cls, policy: Policy, model: ModelSpec) -> Target:
        """``model`` with the timeouts ``policy`` sets for it."""
        return cls(model, policy.timeouts_for(model))


class Backend(Protocol):
    """A client for one kind of upstream (``openai_compat``, ``litellm``, ``local``).

    Implementations raise only :class:`router.errors.UpstreamError` subclasses, translated in
    one place per backend, and never retry on their own: retries and fallbacks belong to
    :mod:`router.backends.calls`.
    """

    async def complete(self, req: ChatRequest, target: Target) -> Completion:
        """Call ``target`` and return the whole completion."""
        ...

    def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[Chunk]:
        """Call ``target`` and yield its chunks as they arrive, the usage chunk included."""
        ...

    async def aclose(self) -> None:
        """Release connections and workers."""
        ...


@runtime_checkable
class BatchedStream(Protocol):
    """A backend's stream that can also hand out its chunks a read at a time.

    Its reads survive the cancellation of the task awaiting them: the stream's state lives in
    the object, not in a suspended generator, so once a client went away another task can go on
    reading the upstream (to bill from its usage) without a task having stood between the
    upstream and the client all along (:mod:`router.ledger.drain`).
    """

    async def batch(self) -> list[Chunk]:
        """The chunks of the next read (at least one), ``[]`` at the end; raise on failure."""
        ...

    async def aclose(self) -> None:
        """Stop reading and release the connection."""
        ...
