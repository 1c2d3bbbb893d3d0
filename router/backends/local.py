"""The ``local`` backend: models loaded in-process, on numpy (a Llama on the CPU) or on
transformers (anything else, CUDA when present): :mod:`router.backends.local_load` picks.

Wiring (the app's lifespan)::

    local = LocalBackend()
    await local.start(policy)          # loads every ``backend: local`` model; call again after
                                       # each policy reload (loads new or changed models only)
    ...  /readyz answers 200 only while ``local.ready``
    await local.aclose()               # at shutdown

Each model has ``max_concurrency`` slots; each slot runs one generation in a worker thread (a
decode loop, :mod:`router.backends.local_numpy` or :mod:`router.backends.local_model`) that
hands its text to the event loop through an ``asyncio.Queue``. Up to ``max_queue`` more requests
wait for a slot; past that, ``queue_full`` decides: ``wait`` (wait anyway), ``fallback``
(:class:`LocalQueueFull`, which the caller treats like any transient upstream failure: the next
fallback model is tried at once) or ``reject`` (:class:`router.errors.ServiceUnavailable`, 503).
A client that goes away cancels its generation between two tokens and frees the slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import structlog

from router.backends.base import Target
from router.backends.local_engine import Engine, Event, Finished, SamplingParams, TextDelta
from router.errors import (
    ServiceUnavailable,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamServerError,
    UpstreamTimeout,
)
from router.policy.schema import ModelSpec, Policy
from router.policy.sections.local_model import LocalModelSettings
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk, Completion, Usage

log = structlog.get_logger(__name__)

Loader = Callable[[LocalModelSettings], Engine]
"""Loads one model (blocking); runs in a worker thread."""

_ROLE_FOR_TEMPLATE = {"developer": "system", "function": "tool"}


class LocalQueueFull(UpstreamError):
    """Every slot of a local model is busy and its queue is full (``queue_full: fallback``).

    ``retryable`` so that the caller moves on to the next fallback model; it is in no
    ``retry.on`` class, so the same model is not tried again.
    """

    status = 503
    error_type = "server_error"
    default_code = "local_queue_full"
    retryable = True


class LocalModelUnavailable(UpstreamError):
    """The local model is not loaded (still loading, failed to load, or not in the policy)."""

    status = 503
    error_type = "server_error"
    default_code = "local_model_unavailable"
    retryable = True


def _load_engine(settings: LocalModelSettings) -> Engine:
    # numpy or transformers (router.backends.local_load); torch is imported only for the latter.
    from router.backends.local_load import load_engine

    return load_engine(settings)


@dataclass(slots=True)
class LocalStats:
    """Counters of one model since it was loaded; rates are those of one generation stream."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prefill_s: float = 0.0
    """Seconds spent on prompts, up to each generation's first token."""
    decoded_tokens: int = 0
    """Completion tokens after each generation's first (the first is part of prefill)."""
    decode_s: float = 0.0
    running: int = 0
    waiting: int = 0
    rejected: int = 0

    @property
    def output_tokens_per_s(self) -> float | None:
        """Measured decode speed of one stream; None before any tokens were decoded."""
        return self.decoded_tokens / self.decode_s if self.decode_s > 0 else None

    @property
    def input_tokens_per_s(self) -> float | None:
        """Measured prompt (prefill) speed; None before any prompt was processed."""
        return self.prompt_tokens / self.prefill_s if self.prefill_s > 0 else None

    def add(self, done: Finished) -> None:
        """Count one finished generation."""
        self.requests += 1
        self.prompt_tokens += done.prompt_tokens
        self.completion_tokens += done.completion_tokens
        self.prefill_s += done.prefill_s
        if done.completion_tokens > 1:
            self.decoded_tokens += done.completion_tokens - 1
            self.decode_s += done.decode_s


@dataclass(slots=True)
class _Served:
    """A loaded model with its slots and worker threads."""

    name: str
    settings: LocalModelSettings
    engine: Engine
    executor: ThreadPoolExecutor
    slots: asyncio.Semaphore
    stats: LocalStats = field(default_factory=LocalStats)
    cancels: set[threading.Event] = field(default_factory=set)
    """The cancel flags of the generations running now."""

    @classmethod
    def create(cls, name: str, settings: LocalModelSettings, engine: Engine) -> _Served:
        n = settings.max_concurrency
        pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"local-{name}")
        return cls(name, settings, engine, pool, asyncio.Semaphore(n))

    async def acquire(self, deadline_s: float | None) -> None:
        """Wait for a slot, or apply ``queue_full``. ``deadline_s`` is on the loop's clock."""
        s = self.settings
        busy = self.slots.locked()
        if busy and s.queue_full != "wait" and self.stats.waiting >= s.max_queue:
            self.stats.rejected += 1
            msg = (
                f"Local model '{self.name}' is busy: {s.max_concurrency} running, "
                f"{self.stats.waiting} waiting."
            )
            if s.queue_full == "reject":
                raise ServiceUnavailable(msg, code="local_queue_full")
            raise LocalQueueFull(msg, model=self.name)
        loop = asyncio.get_running_loop()
        limits = [deadline_s - loop.time()] if deadline_s is not None else []
        if s.queue_timeout_s is not None:
            limits.append(s.queue_timeout_s)
        self.stats.waiting += 1
        try:
            async with asyncio.timeout(min(limits) if limits else None):
                await self.slots.acquire()
        except TimeoutError:
            self.stats.rejected += 1
            raise LocalQueueFull(
                f"Local model '{self.name}' had no free slot in time.", model=self.name
            ) from None
        finally:
            self.stats.waiting -= 1
        self.stats.running += 1

    def release(self) -> None:
        """Free a slot (called when the worker thread has really finished)."""
        self.stats.running -= 1
        self.slots.release()

    def cancel_running(self) -> None:
        """Ask every running generation to stop at its next token."""
        for flag in self.cancels:
            flag.set()

    def shutdown(self) -> None:
        """Wait for the running generations, then free the model (blocking)."""
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.engine.close()


class LocalBackend:
    """Serves every ``backend: local`` model of the policy from this process."""

    def __init__(self, loader: Loader = _load_engine) -> None:
        self._loader = loader
        self._served: dict[str, _Served] = {}
        self._expected: set[str] = set()
        self._errors: dict[str, str] = {}
        self._loading: set[str] = set()
        self._lock = asyncio.Lock()
        self._started = False

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self, policy: Policy) -> None:
        """Load the policy's local models that are not loaded yet (or whose ``local``
        settings changed), and unload those the policy no longer has. Idempotent.

        A model that fails to load is logged and listed in :attr:`errors`; requests to it get
        :class:`LocalModelUnavailable` (so they fall back) and :attr:`ready` stays False.
        """
        specs = [m for m in policy.models if m.backend == "local"]
        async with self._lock:
            self._expected = {m.name for m in specs}
            self._started = True
            for spec in specs:
                current = self._served.get(spec.name)
                if current is None or current.settings != spec.local:
                    await self._load(spec)
            for name in [n for n in self._served if n not in self._expected]:
                await self._unload(name, cancel_running=False)
            for name in [n for n in self._errors if n not in self._expected]:
                del self._errors[name]

    async def load(self, spec: ModelSpec) -> None:
        """Load one model now (replacing a loaded one of the same name)."""
        async with self._lock:
            self._expected.add(spec.name)
            self._started = True
            await self._load(spec)

    def add(self, name: str, settings: LocalModelSettings, engine: Engine) -> None:
        """Serve an engine that is already loaded (tests, benchmarks)."""
        old = self._served.pop(name, None)
        self._served[name] = _Served.create(name, settings, engine)
        self._expected.add(name)
        self._started = True
        if old is not None:
            old.executor.shutdown(wait=False)

    async def aclose(self) -> None:
        """Cancel running generations (at their next token) and free every model."""
        async with self._lock:
            for name in list(self._served):
                await self._unload(name, cancel_running=True)
            self._expected.clear()

    @property
    def ready(self) -> bool:
        """True once :meth:`start` ran and every local model of the policy is loaded."""
        return self._started and all(n in self._served for n in self._expected)

    @property
    def loading(self) -> frozenset[str]:
        """Names of the models being loaded now."""
        return frozenset(self._loading)

    @property
    def errors(self) -> dict[str, str]:
        """Why each model that failed to load failed, by model name."""
        return dict(self._errors)

    def stats(self) -> dict[str, LocalStats]:
        """Live counters of each loaded model, by name (for /metrics and local_cost)."""
        return {name: s.stats for name, s in self._served.items()}

    async def _load(self, spec: ModelSpec) -> None:
        settings = spec.local
        if settings is None:
            self._errors[spec.name] = "backend 'local' needs a 'local:' section with a source"
            log.error("local_model_unconfigured", model=spec.name)
            return
        self._loading.add(spec.name)
        started = time.perf_counter()
        try:
            engine = await asyncio.to_thread(self._loader, settings)
        except Exception as exc:  # a bad file or device must not stop the gateway
            self._errors[spec.name] = f"{type(exc).__name__}: {exc}"
            log.error("local_model_load_failed", model=spec.name, error=self._errors[spec.name])
            return
        finally:
            self._loading.discard(spec.name)
        self._errors.pop(spec.name, None)
        old = self._served.get(spec.name)
        self._served[spec.name] = _Served.create(spec.name, settings, engine)
        log.info(
            "local_model_loaded",
            model=spec.name,
            source=settings.source,
            load_s=round(time.perf_counter() - started, 2),
        )
        if old is not None:  # its running generations finish on the old copy
            await asyncio.to_thread(old.shutdown)

    async def _unload(self, name: str, *, cancel_running: bool) -> None:
        served = self._served.pop(name, None)
        if served is not None:
            if cancel_running:
                served.cancel_running()
            await asyncio.to_thread(served.shutdown)

    # ---- requests ----------------------------------------------------------------------

    async def complete(self, req: ChatRequest, target: Target) -> Completion:
        """Generate the whole answer."""
        served, prompt_ids, params = await self._prepare(req, target.model)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + target.timeouts.total_s
        parts: list[str] = []
        done: Finished | None = None
        async for event in self._run(served, prompt_ids, params, deadline, deadline):
            if isinstance(event, TextDelta):
                parts.append(event.text)
            else:
                done = event
        if done is None:
            raise UpstreamServerError(
                f"Local model '{target.name}' stopped without finishing.", model=target.name
            )
        usage = Usage(done.prompt_tokens, done.completion_tokens)
        body: dict[str, Any] = {
            "id": _completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": target.model.wire_model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(parts), "refusal": None},
                    "logprobs": None,
                    "finish_reason": done.finish_reason,
                }
            ],
            "usage": _usage_body(usage),
            "system_fingerprint": None,
        }
        return Completion(body=body, usage=usage, model=target.name)

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[Chunk]:
        """Yield the role chunk, one chunk per released piece of text, the finish chunk and
        the usage chunk (always; the pipeline drops it when the client did not ask)."""
        served, prompt_ids, params = await self._prepare(req, target.model)
        timeouts = target.timeouts
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.total_s
        first = loop.time() + timeouts.first_token_s if timeouts.first_token_s else deadline
        base = {
            "id": _completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": target.model.wire_model,
            "system_fingerprint": None,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> Chunk:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return Chunk({**base, "choices": [choice]})

        started = False
        async for event in self._run(served, prompt_ids, params, min(first, deadline), deadline):
            if not started:
                started = True
                yield chunk({"role": "assistant", "content": ""})
            if isinstance(event, TextDelta):
                yield chunk({"content": event.text})
            else:
                usage = Usage(event.prompt_tokens, event.completion_tokens)
                yield chunk({}, event.finish_reason)
                yield Chunk({**base, "choices": [], "usage": _usage_body(usage)}, usage=usage)

    def prompt_tokens(self, name: str, req: ChatRequest) -> int | None:
        """The prompt tokens of ``req`` for the loaded model ``name``, counted as a generation
        would (its own tokenizer and chat template); None when the model is not loaded or its
        template refuses the messages. Blocking: call it off the event loop."""
        served = self._served.get(name)
        if served is None:
            return None
        try:
            return len(served.engine.encode_chat(_template_messages(req)))
        except Exception:  # a template that refuses a role: the request fails later, clearly
            return None

    async def _prepare(
        self, req: ChatRequest, target: ModelSpec
    ) -> tuple[_Served, list[int], SamplingParams]:
        served = self._served.get(target.name)
        if served is None:
            why = self._errors.get(target.name)
            state = "is loading" if target.name in self._loading else "is not loaded"
            raise LocalModelUnavailable(
                f"Local model '{target.name}' {state}" + (f": {why}" if why else "."),
                model=target.name,
            )
        if req.n is not None and req.n > 1:
            raise UpstreamBadRequest(
                "Local models return one choice; 'n' must be 1.", model=target.name, param="n"
            )
        messages = _template_messages(req)
        try:
            prompt_ids = await asyncio.to_thread(served.engine.encode_chat, messages)
        except Exception as exc:  # e.g. a chat template that refuses a role or an order
            raise UpstreamBadRequest(
                f"Local model '{target.name}' cannot take these messages: {exc}",
                model=target.name,
                param="messages",
            ) from exc
        room = served.engine.context_window - len(prompt_ids)
        if room <= 0:
            raise UpstreamBadRequest(
                f"The prompt has {len(prompt_ids)} tokens; '{target.name}' handles at most "
                f"{served.engine.context_window}.",
                model=target.name,
                param="messages",
                code="context_length_exceeded",
            )
        s = served.settings
        wanted = req.output_limit or s.max_new_tokens
        limit = min(wanted, target.capabilities.max_output_tokens, room)
        stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
        params = SamplingParams(
            max_new_tokens=limit,
            temperature=s.default_temperature if req.temperature is None else req.temperature,
            top_p=s.default_top_p if req.top_p is None else req.top_p,
            stop=stop,
            seed=req.seed,
        )
        return served, prompt_ids, params

    async def _run(
        self,
        served: _Served,
        prompt_ids: list[int],
        params: SamplingParams,
        first_deadline: float,
        deadline: float,
    ) -> AsyncIterator[Event]:
        """Run one generation in a worker thread; yield its events on the loop."""
        loop = asyncio.get_running_loop()
        await served.acquire(first_deadline)
        queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()
        cancel = threading.Event()
        served.cancels.add(cancel)

        def put(item: Event | BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                for event in served.engine.generate(prompt_ids, params, cancel):
                    put(event)
            except BaseException as exc:
                put(exc)
            finally:
                put(None)

        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                served.release()

        try:
            future = loop.run_in_executor(served.executor, work)
        except BaseException:
            release()
            raise
        future.add_done_callback(lambda _f: release())
        wait_until = first_deadline
        try:
            while True:
                try:
                    async with asyncio.timeout(max(0.0, wait_until - loop.time())):
                        item = await queue.get()
                except TimeoutError:
                    raise UpstreamTimeout(
                        f"Local model '{served.name}' did not answer in time.", model=served.name
                    ) from None
                wait_until = deadline
                if item is None:
                    await future
                    release()  # the worker is done: its slot is free when we return
                    return
                if isinstance(item, BaseException):
                    await future
                    release()
                    raise UpstreamServerError(
                        f"Local model '{served.name}' failed: {type(item).__name__}: {item}",
                        model=served.name,
                    ) from item
                if isinstance(item, Finished):
                    served.stats.add(item)
                yield item
        finally:
            cancel.set()
            served.cancels.discard(cancel)


def _template_messages(req: ChatRequest) -> list[dict[str, str]]:
    """``req``'s messages as the chat template takes them (roles it knows, text content)."""
    return [
        {"role": _ROLE_FOR_TEMPLATE.get(m.role, m.role), "content": m.text()} for m in req.messages
    ]


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _usage_body(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
