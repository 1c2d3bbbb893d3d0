"""Embedding backends: the gateway's own encoder, and hosted OpenAI-compatible ``/embeddings``.

``kind: embedding`` models of a policy are served here, never by the chat backends. The
``encoder`` backend is the all-MiniLM-L6-v2 encoder the classifier and the semantic cache use
(384 dimensions, unit length, 256 tokens per input), loaded on first use in a worker thread.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import numpy.typing as npt
import orjson

from router.backends.translate import from_exception, from_status
from router.backends.upstream_http import exchange
from router.classify.encoder import Encoder
from router.classify.inputs import PromptText
from router.errors import InvalidRequest, UpstreamError, UpstreamServerError
from router.policy.schema import ModelSpec, Policy

ENCODER_DIMENSIONS = 384
"""Width of all-MiniLM-L6-v2's embeddings."""
ENCODER_MAX_TOKENS = 256
"""Tokens of one input the encoder reads (the model's own limit); longer inputs are clipped."""


@dataclass(frozen=True, slots=True)
class Embedded:
    """Embeddings of a batch of inputs, in order, and the input tokens billed for them."""

    vectors: list[list[float]] | npt.NDArray[np.float32]
    prompt_tokens: int
    model: str
    estimated: bool = False
    """True when the upstream sent no usage and ``prompt_tokens`` is the gateway's estimate."""


@dataclass
class LocalEncoders:
    """The encoder behind ``backend: encoder`` models: one, loaded once, on first use."""

    _encoder: Encoder | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def encoder(self) -> Encoder:
        """The loaded encoder (loading blocks for about a second, in a worker thread)."""
        async with self._lock:
            if self._encoder is None:
                self._encoder = await asyncio.to_thread(
                    Encoder.load, device="auto", max_tokens=ENCODER_MAX_TOKENS
                )
            return self._encoder

    async def embed(self, texts: list[str], model: ModelSpec) -> Embedded:
        """Unit-length embeddings of ``texts``; billed tokens are the untruncated lengths."""
        encoder = await self.encoder()
        prompts = [PromptText(user=t) for t in texts]
        encoded = await asyncio.to_thread(encoder.encode, prompts)
        # each input also costs its [CLS] and [SEP] tokens, as for a hosted BERT-style model
        tokens = int(encoded.user_tokens.sum()) + 2 * len(texts)
        return Embedded(encoded.embeddings, tokens, model.name)

    def close(self) -> None:
        """Release the encoder's worker threads."""
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None


async def hosted_embed(
    session: aiohttp.ClientSession, body: dict[str, Any], target: ModelSpec, policy: Policy
) -> tuple[dict[str, Any], int | None]:
    """POST ``body`` to ``target``'s ``/embeddings``; its JSON answer and billed tokens.

    Retryable failures (429, 5xx, timeouts, connection errors) are retried as the policy's
    ``retry`` says for chat; the answer is returned as the upstream sent it.
    """
    timeouts = policy.timeouts_for(target)
    retry = policy.retry_for(target)
    sent = {**body, **target.extra_body, "model": target.wire_model}
    content = orjson.dumps(sent)
    for attempt in range(retry.attempts):
        try:
            status, raw = await exchange(session, target, timeouts, "/embeddings", content)
        except Exception as exc:
            err = from_exception(exc, target.name)
            if not err.retryable or attempt + 1 >= retry.attempts:
                raise err from None
            await asyncio.sleep(min(retry.backoff_s * 2**attempt, retry.max_backoff_s))
            continue
        if status >= 400:
            failure: UpstreamError = from_status(status, raw, target.name)
            if not failure.retryable or attempt + 1 >= retry.attempts:
                raise failure
            await asyncio.sleep(min(retry.backoff_s * 2**attempt, retry.max_backoff_s))
            continue
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamServerError(
                f"Model '{target.name}' answered with invalid JSON.", model=target.name
            ) from None
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            raise UpstreamServerError(
                f"Model '{target.name}' answered without 'data'.", model=target.name
            )
        usage = answer.get("usage")
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return answer, tokens if isinstance(tokens, int) else None
    raise AssertionError("unreachable: the last attempt raises")  # pragma: no cover


def check_encoder_request(model: ModelSpec, inputs: list[Any], dimensions: int | None) -> None:
    """Refuse what the local encoder cannot do: token arrays, other widths."""
    if any(not isinstance(x, str) for x in inputs):
        raise InvalidRequest(
            f"The model '{model.name}' takes text input only, not token arrays.",
            param="input",
            code="unsupported_value",
        )
    if dimensions is not None and dimensions != ENCODER_DIMENSIONS:
        raise InvalidRequest(
            f"The model '{model.name}' has {ENCODER_DIMENSIONS} dimensions.",
            param="dimensions",
            code="unsupported_value",
        )
