"""Knobs of the mock upstream: the process-wide :class:`MockConfig` and per-request overrides.

A request can steer the mock three ways, later ones winning:

1. the running config (CLI flags at start, ``POST /_mock/config`` at run time);
2. directives in the model name, for gateways that do not forward headers:
   ``mock-fail-500``, ``mock-fail-429-first-2``, ``mock-hang``, ``mock-cut-3``,
   ``mock-latency-50``, ``mock-ttft-20``, ``mock-tps-100``, ``mock-tokens-64``
   (combinable: ``mock-latency-20-tps-50``; a ``provider/`` prefix is ignored);
3. ``x-mock-*`` request headers: ``x-mock-fail-status``, ``x-mock-latency-ms``,
   ``x-mock-ttft-ms``, ``x-mock-tokens-per-s``, ``x-mock-reply-tokens``,
   ``x-mock-stream-cut-after``, ``x-mock-hang``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class MockConfig(BaseModel):
    """Behaviour of the mock upstream. Every field is also a CLI flag and a runtime knob."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latency_ms: float = Field(0.0, ge=0, description="delay before the response's first byte")
    ttft_ms: float = Field(0.0, ge=0, description="streams: delay before the first content token")
    tokens_per_s: float = Field(0.0, ge=0, description="streams: token pacing; 0 = no pacing")
    reply_tokens: int | None = Field(
        None, ge=1, description="reply length in tokens (words); None = the natural reply"
    )
    fail_status: int | None = Field(
        None, ge=400, le=599, description="inject this error status (see fail_rate/fail_first_n)"
    )
    fail_rate: float = Field(0.0, ge=0, le=1, description="probability of the injected error")
    fail_first_n: int = Field(0, ge=0, description="fail the first N matching requests only")
    fail_models: tuple[str, ...] = Field((), description="inject errors only for these models")
    fail_seed: int = Field(0, description="seed of the fail_rate draws (reproducible runs)")
    retry_after_s: float = Field(1.0, ge=0, description="retry-after header sent with a 429")
    stream_cut_after: int | None = Field(
        None, ge=0, description="streams: send K SSE events, then cut the stream"
    )
    stream_cut_mode: Literal["abort", "eof", "error"] = Field(
        "abort",
        description="abort = drop the connection; eof = end the body without [DONE]; "
        "error = send an OpenAI error event, then end without [DONE]",
    )
    hang: bool = Field(False, description="never answer chat requests (timeout tests)")
    require_api_key: str | None = Field(None, description="401 unless 'Bearer <key>' is sent")
    canned: dict[str, str] = Field(
        default_factory=dict, description="prompt substring -> fixed answer"
    )
    judge: dict[str, Literal["longer", "shorter", "first", "second", "tie"]] = Field(
        default_factory=dict,
        description="scripted pairwise judge: question substring ('*': any) -> rule "
        "(see router.testing.mock_judge)",
    )
    prompt_tokens: int | None = Field(None, ge=0, description="override usage.prompt_tokens")
    completion_tokens: int | None = Field(
        None, ge=0, description="override usage.completion_tokens"
    )
    cached_tokens: int = Field(
        0,
        ge=0,
        description="chat usage.prompt_tokens_details.cached_tokens (OpenAI's prompt-cache "
        "reads, at most prompt_tokens)",
    )
    models: tuple[str, ...] = Field(
        ("mock-model", "mock-local", "mock-hosted", "mock-hosted-backup"),
        description="ids listed by GET /v1/models (any model name is served)",
    )
    history_size: int = Field(100, ge=0, description="request bodies kept for /_mock/stats")

    def updated(self, patch: dict[str, Any]) -> MockConfig:
        """A validated copy with ``patch`` applied (raises pydantic's ValidationError)."""
        return MockConfig.model_validate({**self.model_dump(), **patch})

    def fails_model(self, model: str) -> bool:
        """Whether config-level error injection applies to ``model``."""
        return self.fail_status is not None and (not self.fail_models or model in self.fail_models)


@dataclass(slots=True)
class RequestControl:
    """Per-request overrides from the model name and ``x-mock-*`` headers (None = use config)."""

    fail_status: int | None = None
    fail_first_n: int = 0
    latency_ms: float | None = None
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    reply_tokens: int | None = None
    stream_cut_after: int | None = None
    hang: bool = False


def _num(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_model_directives(model: str) -> RequestControl:
    """Parse ``mock-fail-500-first-2``-style directives out of a model name."""
    ctl = RequestControl()
    name = model.rsplit("/", 1)[-1]
    if not name.startswith("mock-"):
        return ctl
    parts = name.split("-")[1:]
    i = 0
    while i < len(parts):
        word = parts[i]
        value = _num(parts[i + 1]) if i + 1 < len(parts) else None
        if word == "hang":
            ctl.hang = True
            i += 1
            continue
        if value is None:
            i += 1
            continue
        if word == "fail":
            ctl.fail_status = int(value)
        elif word == "first":
            ctl.fail_first_n = int(value)
        elif word == "cut":
            ctl.stream_cut_after = int(value)
        elif word == "latency":
            ctl.latency_ms = value
        elif word == "ttft":
            ctl.ttft_ms = value
        elif word == "tps":
            ctl.tokens_per_s = value
        elif word == "tokens":
            ctl.reply_tokens = max(1, int(value))
        else:
            i += 1
            continue
        i += 2
    return ctl


def apply_header(ctl: RequestControl, name: str, value: str) -> None:
    """Apply one ``x-mock-<name>`` header (name without the prefix); bad values are ignored."""
    if name == "hang":
        ctl.hang = value.strip().lower() in {"1", "true", "yes", "on"}
        return
    num = _num(value)
    if num is None:
        return
    if name == "fail-status":
        ctl.fail_status = int(num)
    elif name == "latency-ms":
        ctl.latency_ms = num
    elif name == "ttft-ms":
        ctl.ttft_ms = num
    elif name == "tokens-per-s":
        ctl.tokens_per_s = num
    elif name == "reply-tokens":
        ctl.reply_tokens = max(1, int(num))
    elif name == "stream-cut-after":
        ctl.stream_cut_after = int(num)
