"""Streamed answers: relaying an upstream stream, and replaying a cached one.

Both are async generators that record the request in their ``finally``, so a stream is
recorded once however it ends: whole, with an upstream failure (an error event, then
``[DONE]``), or cut by the client (the generator is closed or cancelled). A client that left
before the upstream's usage arrived is billed once the upstream finished (read in the
background, bounded by the model's ``total_s``), then recorded with status 499.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import structlog

from router.budget.pricing import model_cost_usd
from router.cache.entry import CacheHit
from router.cache.stage import StreamRecorder, hit_stream
from router.errors import RouterError, UpstreamError
from router.learning.shadow import ShadowJob
from router.ledger.drain import ChunkReader, estimated_usage
from router.outcome import CLIENT_CLOSED
from router.pipeline.context import Run
from router.pipeline.record import record
from router.protocol import sse
from router.protocol.chat_response import Chunk
from router.route.capabilities import estimate_prompt_tokens
from router.services import Services

log = structlog.get_logger("router.request")


async def relay(
    services: Services,
    run: Run,
    first: Chunk,
    rest: ChunkReader,
    recorder: StreamRecorder | None,
    shadow: ShadowJob | None,
) -> AsyncIterator[bytes]:
    """Forward chunks to the client; end with an error event on failure, always ``[DONE]``.

    ``recorder`` sees every chunk and stores the completion only when the stream ended well;
    ``shadow`` collects the served text.
    """
    include_usage = run.req.include_usage
    answered = run.answered
    failure: RouterError | None = None
    # Every chunk the reader has buffered is handled at once and sent as one piece: under load
    # a stream's chunks pile up between two turns of the loop, and one send for all of them
    # costs the server and the client less than one each. ``batch`` is [] once the upstream
    # ended, so a non-empty batch in ``finally`` means the client left mid-stream.
    batch = [first]
    try:
        while batch:
            parts: list[bytes] = []
            for chunk in batch:
                if recorder is not None:
                    recorder.add(chunk)
                if shadow is not None:
                    shadow.observe(chunk)
                if chunk.usage is None:
                    if chunk.raw is not None:  # the common case: the upstream's bytes as sent
                        parts += (sse.DATA, chunk.raw, sse.END)
                        continue
                else:
                    run.usage = chunk.usage
                    run.cost_usd = model_cost_usd(answered, chunk.usage)
                    if include_usage and not chunk.data.get("choices"):
                        parts.append(sse.usage_event_with_cost(chunk, run.cost_usd))
                        continue
                ev = sse.chunk_event(chunk, include_usage)
                if ev is not None:
                    parts.append(ev)
            if parts:
                yield b"".join(parts)
            waited = time.perf_counter()
            batch = await rest.batch()
            run.upstream_s += time.perf_counter() - waited
        if recorder is not None:  # the upstream finished without an error: cache it
            recorder.finish()
    except UpstreamError as exc:
        failure = exc
        yield sse.error_event(exc)
    finally:
        # Runs on success, on upstream failure, and when the client goes away (cancellation).
        if failure is None and run.usage is None and batch:
            # The client left mid-stream: bill from the upstream's usage once it has finished.
            _record_after_drain(services, run, rest)
        else:
            if run.usage is None:
                # The upstream failed mid-stream or never sent usage. It still bills the prompt
                # and what it generated, so the ledger and the budget get an estimate (flagged
                # ``estimated``), not $0.
                run.usage = estimated_usage(estimate_prompt_tokens(run.req), rest, 0)
                run.cost_usd = model_cost_usd(answered, run.usage)
                if failure is None:
                    run.error_code = "no_usage"
            record(services, run.req, run.finish(failure))
            await rest.aclose()
    yield sse.DONE


def _record_after_drain(services: Services, run: Run, rest: ChunkReader) -> None:
    """Read the rest of the upstream stream in the background, then record the request.

    The upstream's usage chunk bills it exactly; without one (the upstream failed too, or took
    longer than the model's ``total_s`` timeout) the usage is estimated and flagged.
    """
    run.status = CLIENT_CLOSED
    run.error_code = "client_disconnected"
    ledger = services.ledger
    if ledger is None:  # nothing to bill into: record what is known now
        record(services, run.req, run.finish(None))
        return
    answered = run.answered
    timeout_s = services.policies.current.policy.timeouts_for(answered).total_s

    async def drain() -> None:
        usage = await rest.detach(timeout_s)
        run.usage = usage or estimated_usage(estimate_prompt_tokens(run.req), rest, 0)
        run.cost_usd = model_cost_usd(answered, run.usage)
        record(services, run.req, run.finish(None))

    ledger.spawn(drain())


async def replay(services: Services, run: Run, hit: CacheHit) -> AsyncIterator[bytes]:
    """The SSE body of a cached answer; the request is recorded when the replay ends."""
    try:
        async for event in hit_stream(hit, run.req.include_usage):
            yield event
    finally:
        record(services, run.req, run.finish(None))
