"""Static token embeddings distilled from the encoder: the semantic cache's first stage.

A transformer pass costs milliseconds of CPU per prompt; with unique prompts almost every
semantic lookup is a miss, so paying that pass to learn "nothing similar is cached" bounded
``auto`` at a few hundred requests/s on two cores. This module makes the common case cheap:

* **distillation** (once, offline, model2vec-style): every vocabulary token ``t`` goes through
  the encoder alone, as the sentence ``[CLS] t [SEP]``; its mean-pooled output is ``t``'s
  vector. The table is centred (the mean token vector, which every prompt shares, is
  subtracted: it only pulls all prompts together) and projected on its first
  :data:`DIMENSIONS` principal axes. It is written once into the models directory
  (``ROUTER_MODELS_DIR``) as a float32 ``.npy`` file (31 MB) that every worker memory-maps
  read-only (a float16 file would be half the size, but converting its rows cost 20 us a
  prompt, as much as everything else in a lookup but the tokenizer);
* **embedding** a prompt: tokenize (no truncation), take the mean of its tokens' rows, and
  L2-normalise: tens of microseconds, on the event loop.

A first-stage embedding is never a verdict: :mod:`router.cache.service` uses it only to find
candidates, which the transformer then confirms with today's threshold and guards.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import structlog

from router.classify.encoder import Encoder, OnnxBackend
from router.classify.onnx_int8 import lock_file, source_key

log = structlog.get_logger(__name__)

F32 = npt.NDArray[np.float32]
RECIPE = "static-cls-tok-sep-mean-centred-pca-f32-v1"
"""Names the distillation; change it when the recipe changes (the file name follows)."""
DIMENSIONS = 256
"""Width of a static embedding (principal axes kept out of the encoder's 384)."""
DISTILL_BATCH = 512
"""Vocabulary rows per encoder call while distilling (a fixed split: the result is
deterministic even on the int8 runtime, whose rows share a call's quantisation)."""


def distill(encoder: Encoder, dims: int = DIMENSIONS) -> F32:
    """The static table ``[vocab, min(dims, encoder width)]`` of ``encoder`` (blocking; about
    10 s for MiniLM's 30,522 tokens on two cores). Deterministic for a given encoder."""
    cls_id, sep_id, _ = encoder.special_ids
    vocab = encoder.vocab_size
    backend = encoder.backend
    rows: list[F32] = []
    for start in range(0, vocab, DISTILL_BATCH):
        ids = np.arange(start, min(vocab, start + DISTILL_BATCH), dtype=np.int64)
        batch = np.stack([np.full_like(ids, cls_id), ids, np.full_like(ids, sep_id)], axis=1)
        mask = np.ones_like(batch)
        if isinstance(backend, OnnxBackend):
            rows.append(backend.embed_together(batch, mask))
        else:
            rows.append(backend.embed(batch, mask))
    table = np.concatenate(rows, axis=0).astype(np.float64)
    table -= table.mean(axis=0)
    # Principal axes by SVD of the centred table; the sign of each axis is fixed (largest
    # loading positive) so that the file does not depend on the LAPACK build's choice.
    _, _, vt = np.linalg.svd(table, full_matrices=False)
    axes = vt[: min(dims, vt.shape[0])]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    axes *= signs[:, None]
    out: F32 = (table @ axes.T).astype(np.float32)
    return out


def table_key(encoder: Encoder, source: str) -> str:
    """A short digest of the encoder (``source``: its weights' identity, and its runtime) and
    the recipe: the table's file name changes whenever either does."""
    h = hashlib.sha256(f"{RECIPE}/{DIMENSIONS}/{source}/{encoder.backend.name}".encode())
    h.update(str(encoder.vocab_size).encode())
    return h.hexdigest()[:16]


def ensure_table(encoder: Encoder, model_dir: Path, cache_dir: Path) -> Path:
    """The distilled table of ``encoder`` (whose weights are in ``model_dir``) in
    ``cache_dir``, distilling it first if needed (under a file lock, so that concurrent workers
    distill it once)."""
    path = cache_dir / f"minilm-l6-static-{table_key(encoder, source_key(model_dir))}.npy"
    if path.is_file():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / (path.name + ".lock")).open("a+b") as fh:
        lock_file(fh)
        if not path.is_file():
            log.info("static_table_build", file=path.name, note="once, about 10 s")
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, distill(encoder))
            tmp.replace(path)  # atomic: a reader never maps a half-written file
    return path


class StaticEmbedder:
    """Mean of distilled token vectors, L2-normalised: a prompt's first-stage embedding."""

    def __init__(self, encoder: Encoder, table: npt.NDArray[np.floating]) -> None:
        """Use ``encoder``'s tokenizer with ``table`` (``[vocab, dim]``, e.g. memory-mapped)."""
        if table.ndim != 2 or table.shape[0] != encoder.vocab_size:
            raise ValueError(f"table of shape {table.shape} for {encoder.vocab_size} tokens")
        self._encoder = encoder
        # a plain ndarray view of a memory map: the same pages, without np.memmap's per-index
        # subclass overhead
        self._table = table.view(np.ndarray) if isinstance(table, np.memmap) else table
        self.dim = int(table.shape[1])

    @classmethod
    def load(cls, encoder: Encoder, path: Path) -> StaticEmbedder:
        """Memory-map the table at ``path`` (read-only: workers share its pages)."""
        return cls(encoder, np.load(path, mmap_mode="r", allow_pickle=False))

    def embed(self, texts: Sequence[str]) -> list[F32 | None]:
        """One ``[dim]`` float32 unit vector per text, each computed alone (no batch effects);
        None for a text without tokens or whose vectors cancel out."""
        return [self.embed_ids(ids) for ids in self._encoder.plain_ids(texts)]

    def embed_ids(self, ids: Sequence[int]) -> F32 | None:
        """The embedding of a text already tokenized (``ids`` without special tokens, as
        :meth:`Encoder.plain_ids` gives them); None without tokens."""
        if not ids:
            return None
        # float32 throughout (the table is float32): no conversions, and the norm as one dot
        # product; this runs on the event loop for every `auto` request.
        total: F32 = self._table.take(ids, axis=0).sum(axis=0, dtype=np.float32)
        norm = math.sqrt(float(total @ total))
        if norm <= 1e-6:
            return None
        total *= np.float32(1.0 / norm)
        return total
