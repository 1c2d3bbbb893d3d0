"""The Classifier seam: a complexity score in [0, 1] for a request, with its embedding."""

from __future__ import annotations

import functools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeGuard, cast, runtime_checkable

import numpy as np
import numpy.typing as npt

from router.protocol.chat_request import ChatRequest


@dataclass(frozen=True, slots=True)
class Classification:
    """The classifier's verdict on one request.

    ``score`` estimates P(the strong model is needed). ``embedding`` is the encoder's output
    (L2-normalised, float32) when an encoder ran over the whole last user turn, so the semantic
    cache can reuse it; it is None for a turn longer than the encoder's token budget.
    """

    score: float
    source: str
    """Which classifier produced the score, e.g. ``"heuristic"`` or ``"minilm-mlp@<hash>"``."""
    latency_s: float
    embedding: npt.NDArray[np.float32] | None = None
    static_embedding: npt.NDArray[np.float32] | None = None
    """The semantic cache's first-stage embedding of the last user turn, when the classifier
    computed it on the way (it shares the tokenizer's pass with the score); None otherwise."""


class Classifier(Protocol):
    """Scores how complex a request is."""

    async def classify(self, req: ChatRequest) -> Classification:
        """Score ``req``; never blocks the event loop."""
        ...

    async def aclose(self) -> None:
        """Stop worker threads and free the model."""
        ...


@runtime_checkable
class TurnEmbedder(Protocol):
    """A classifier that can also embed a whole last user turn for the semantic cache."""

    async def embed_turn(self, req: ChatRequest) -> npt.NDArray[np.float32] | None:
        """The whole-turn embedding of ``req``'s last user message (no context, up to the
        encoder's whole-turn cap); None when the turn is longer. Never blocks the event loop."""
        ...


@dataclass(frozen=True, slots=True)
class Confirmation:
    """The transformer's similarity between a prompt and one cached prompt."""

    cosine: float
    """Cosine similarity of the two embeddings, in [-1, 1]."""
    kind: Literal["classifier", "turn"]
    """Which pass embedded both: the classifier's (the turn fits its budget) or the whole-turn
    pass; the cache's threshold depends on it."""


@runtime_checkable
class TwoStageEmbedder(Protocol):
    """A classifier that gives the semantic cache a cheap first stage and a transformer check."""

    def embed_static(self, req: ChatRequest) -> npt.NDArray[np.float32] | None:
        """The first-stage embedding of ``req``'s last user turn (cheap; on the caller's
        thread); None when there is none."""
        ...

    async def confirm(
        self,
        req: ChatRequest,
        candidates: Sequence[str],
        classification: Classification | None = None,
        turns: bool = True,
    ) -> list[Confirmation | None]:
        """The transformer's similarity of ``req`` to each cached prompt (None: not
        comparable); never blocks the event loop."""
        ...


@functools.cache
def _is_two_stage_class(cls: Hashable) -> bool:
    return isinstance(cls, type) and issubclass(cls, TwoStageEmbedder)


@functools.cache
def _is_turn_embedder_class(cls: Hashable) -> bool:
    return isinstance(cls, type) and issubclass(cls, TurnEmbedder)


def is_two_stage(classifier: object) -> TypeGuard[TwoStageEmbedder]:
    """``isinstance(classifier, TwoStageEmbedder)``, decided once per class: a protocol's
    ``isinstance`` inspects the object's attributes on every call (~10 us), and the request
    path asks on every request."""
    return _is_two_stage_class(cast(Hashable, type(classifier)))  # typeshed: a class is hashable


def is_turn_embedder(classifier: object) -> TypeGuard[TurnEmbedder]:
    """``isinstance(classifier, TurnEmbedder)``, decided once per class (see
    :func:`is_two_stage`)."""
    return _is_turn_embedder_class(cast(Hashable, type(classifier)))
