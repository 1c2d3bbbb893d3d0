"""The seam between the ``local`` backend and the thing that generates tokens.

:class:`Engine` is what :mod:`router.backends.local` drives from its worker threads. The real
one is :class:`router.backends.local_model.LocalModel` (torch + transformers); the test double is
:class:`router.testing.scripted_engine.ScriptedEngine`. This module imports neither torch nor
transformers, so the gateway imports without them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to pick each token. ``temperature`` 0 is greedy (argmax)."""

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False
    """Keep going past end-of-sequence tokens (benchmarks that need a fixed length)."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Text released by the latest token(s)."""

    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The end of a generation, with its token counts and timings."""

    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    prefill_s: float
    """Seconds from the start to the first sampled token (the prompt's forward pass)."""
    decode_s: float
    """Seconds spent sampling the tokens after the first."""


Event = TextDelta | Finished


class Engine(Protocol):
    """A loaded model that turns chat messages into a stream of events. Every method blocks."""

    @property
    def context_window(self) -> int:
        """The most positions (prompt plus output tokens) the model handles."""
        ...

    def encode_chat(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """The prompt's token ids for ``messages`` (``role``/``content`` dicts)."""
        ...

    def generate(
        self, prompt_ids: Sequence[int], params: SamplingParams, cancel: threading.Event
    ) -> Iterator[Event]:
        """Yield :class:`TextDelta` events, then exactly one :class:`Finished` (unless
        ``cancel`` is set first, which ends the iterator early)."""
        ...

    def close(self) -> None:
        """Free the model's memory (GPU memory included)."""
        ...
