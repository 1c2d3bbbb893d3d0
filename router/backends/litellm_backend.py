"""The ``litellm`` backend: any provider litellm supports (Anthropic, Bedrock, Gemini, ...).

Every call passes its settings as arguments (``api_key``, ``api_base``, ``timeout``,
``num_retries=0``); litellm's module globals are never set, so two models with different
credentials can be served side by side. Retries and fallbacks stay with the gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from router.backends.base import Target
from router.backends.translate import from_litellm
from router.errors import UpstreamServerError
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk, Completion, Usage
from router.settings import configure_libraries

PASSTHROUGH = (
    "temperature",
    "top_p",
    "n",
    "stop",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "tools",
    "tool_choice",
    "response_format",
    "user",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "parallel_tool_calls",
    "reasoning_effort",
    "thinking",
    "cache_control",
)


def _to_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        out = dump(exclude_none=True)
        if isinstance(out, dict):
            return out
    raise UpstreamServerError(f"litellm returned an unexpected {type(obj).__name__}")


class LiteLLMBackend:
    """Calls providers through ``litellm.acompletion``."""

    def __init__(self) -> None:
        # The price map must come from litellm's bundled copy, never from the network.
        configure_libraries()
        import litellm

        self._litellm: Any = litellm

    def _kwargs(self, req: ChatRequest, target: Target) -> dict[str, Any]:
        raw = req.raw_body()
        kwargs: dict[str, Any] = {k: raw[k] for k in PASSTHROUGH if raw.get(k) is not None}
        model = target.model
        kwargs.update(
            model=model.wire_model,
            messages=raw["messages"],
            timeout=target.timeouts.total_s,
            num_retries=0,
            drop_params=True,
            # litellm imports its MCP bridge (and the optional ``mcp`` package) for any request
            # with tools unless told not to; the gateway never uses MCP tools through litellm.
            _skip_mcp_handler=True,
        )
        if model.endpoint:
            kwargs["api_base"] = model.endpoint
        if model.api_key is not None:
            kwargs["api_key"] = model.api_key.get_secret_value()
        if model.headers:
            kwargs["extra_headers"] = dict(model.headers)
        return kwargs

    async def complete(self, req: ChatRequest, target: Target) -> Completion:
        """Call ``litellm.acompletion`` and return the OpenAI-shaped result."""
        kwargs = self._kwargs(req, target)
        try:
            async with asyncio.timeout(target.timeouts.total_s):
                resp = await self._litellm.acompletion(**kwargs)
        except Exception as exc:
            raise from_litellm(exc, target.name) from exc
        body = _to_dict(resp)
        body.pop("_hidden_params", None)
        return Completion(body=body, usage=Usage.from_openai(body.get("usage")), model=target.name)

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[Chunk]:
        """Stream through litellm, asking for the usage chunk."""
        kwargs = self._kwargs(req, target)
        kwargs.update(stream=True, stream_options={"include_usage": True})
        timeouts = target.timeouts
        try:
            async with asyncio.timeout(timeouts.first_token_s or timeouts.total_s):
                resp = await self._litellm.acompletion(**kwargs)
        except Exception as exc:
            raise from_litellm(exc, target.name) from exc
        it = resp.__aiter__()
        while True:
            try:
                async with asyncio.timeout(timeouts.total_s):
                    part = await it.__anext__()
            except StopAsyncIteration:
                return
            except Exception as exc:
                raise from_litellm(exc, target.name) from exc
            data = _to_dict(part)
            usage = Usage.from_openai(data.get("usage"))
            if usage is None:
                data.pop("usage", None)
            yield Chunk(data=data, usage=usage)

    async def aclose(self) -> None:
        """litellm keeps its own clients; nothing to close here."""
