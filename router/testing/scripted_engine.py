"""A test double of the local backend's :class:`~router.backends.local_engine.Engine`.

It needs no torch: each prompt "token" is one whitespace-separated word, and the answer is a
fixed list of pieces, one piece per generated token. A ``gate`` lets a test hold a generation
in its worker thread (to fill the slots and the queue) and release it later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

from router.backends.local_decode import TextAssembler
from router.backends.local_engine import Event, Finished, FinishReason, SamplingParams, TextDelta


class ScriptedEngine:
    """Answers every prompt with ``pieces``; ``eos`` ends it early like an end-of-text token."""

    def __init__(
        self,
        pieces: Sequence[str] = ("Hello", ",", " world", "!"),
        *,
        context_window: int = 64,
        gate: threading.Event | None = None,
        fail_with: BaseException | None = None,
        token_delay_s: float = 0.0,
    ) -> None:
        self.pieces = tuple(pieces)
        self.gate = gate
        self.fail_with = fail_with
        self.token_delay_s = token_delay_s
        self._context_window = context_window
        self.started = threading.Event()
        """Set when a generation has begun (it may then be blocked on ``gate``)."""
        self.cancelled = threading.Event()
        """Set when a generation saw its cancel flag."""
        self.seen: list[SamplingParams] = []
        self.closed = False

    @property
    def context_window(self) -> int:
        """The most positions the double accepts."""
        return self._context_window

    def encode_chat(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """One id per word of ``role: content`` lines, plus one for the assistant header."""
        if any(m["role"] not in ("system", "user", "assistant", "tool") for m in messages):
            raise ValueError("the chat template has no such role")  # like a jinja TemplateError
        words = sum(len(f"{m['role']}: {m['content']}".split()) for m in messages)
        return list(range(words + 1))

    def generate(
        self, prompt_ids: Sequence[int], params: SamplingParams, cancel: threading.Event
    ) -> Iterator[Event]:
        """Release the pieces one by one, honouring limits, stops, ``gate`` and ``cancel``."""
        self.seen.append(params)
        self.started.set()
        if self.gate is not None:
            while not self.gate.wait(0.01):
                if cancel.is_set():
                    self.cancelled.set()
                    return
        if self.fail_with is not None:
            raise self.fail_with
        text = TextAssembler(lambda ids: "".join(self.pieces[i] for i in ids), params.stop)
        finish: FinishReason = "stop"
        produced = 0
        for i in range(len(self.pieces)):
            if produced >= params.max_new_tokens:
                finish = "length"
                break
            if cancel.is_set():
                self.cancelled.set()
                return
            time.sleep(self.token_delay_s)
            produced += 1
            step = text.push(i)
            if step.text:
                yield TextDelta(step.text)
            if step.stopped:
                break
        else:
            if tail := text.finish():
                yield TextDelta(tail)
        if finish == "length" and (tail := text.finish()):
            yield TextDelta(tail)
        yield Finished(finish, len(prompt_ids), produced, 0.001, 0.001 * produced)

    def close(self) -> None:
        """Record that the backend let the engine go."""
        self.closed = True
