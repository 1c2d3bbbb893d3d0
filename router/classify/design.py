"""Encoded training rows (:class:`Design`), their per-family targets and weights.

The learned part of the head (:mod:`router.classify.validate`) is a ridge regression on the
standardised ``[embedding, features]`` (or the features alone) whose target mixes the strong
model's gain over the weak one, standardised within each family, with the pair-free difficulty
(the share of a file's models that miss the prompt). Rows are weighted so that every family
counts the same, whatever its size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from router.classify.corpus import Corpus
from router.classify.dataset import Outcomes
from router.classify.encoder import Encoder
from router.classify.features import FEATURE_NAMES, feature_matrix
from router.classify.inputs import PromptText
from router.classify.lofo import (
    LAMBDAS,
    STRUCTURE_WEIGHTS,
    Candidate,
    UnitStats,
    unit_stats,
)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
STRUCTURE_FEATURES = ("code", "math", "steps")
Progress = Callable[[int, int], None]
"""Called with ``(done, total)`` prompts while encoding."""
EXTRA_UNIT = "deployment"


@dataclass(frozen=True, slots=True)
class Learned:
    """One setting of the learned part."""

    difficulty_share: float = 0.0
    """Share of the pair-free difficulty in the target (the rest is the standardised gain)."""
    embedding: bool = True
    """Fit on the embedding and the features (False: the 11 features alone)."""
    alpha: float = 1e4
    """Ridge penalty on standardised columns (row weights average 1)."""
    demean: bool = True
    """Fit within-family differences only (see :func:`router.classify.lofo.unit_stats`)."""

    @property
    def key(self) -> str:
        """A short label, e.g. ``emb+feat/gain/a1e+04/within``."""
        cols = "emb+feat" if self.embedding else "feat"
        share = self.difficulty_share
        target = "diff" if share == 1 else f"gain+{share:g}diff" if share else "gain"
        return f"{cols}/{target}/a{self.alpha:.0e}/{'within' if self.demean else 'pooled'}"


DEFAULT_LEARNED: tuple[Learned, ...] = tuple(
    Learned(ds, emb, alpha, demean)
    for ds in (0.0, 0.5)
    for emb in (True, False)
    for alpha in (1e2, 1e4)
    for demean in (True, False)
)


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """What :func:`train_head` searches, or fixes."""

    learned: tuple[Learned, ...] = DEFAULT_LEARNED
    lambdas: tuple[float, ...] = LAMBDAS
    structure_weights: tuple[float, ...] = STRUCTURE_WEIGHTS
    fixed: Candidate | None = None
    """Skip the search: use this learned setting (its ``config`` is a :attr:`Learned.key` of
    ``learned``), λ and s."""
    nested: bool = True
    """Also run the nested validation (the choice redone without the family it scores)."""
    extra_share: float = 0.3
    """Share of the total row weight that a deployment's own labelled rows carry."""
    extra_lambdas: tuple[float, ...] = (*LAMBDAS, 1.5, 2.0, 3.0, 5.0, 10.0)
    """λ candidates when choosing on extra rows: a deployment's own labels can carry a learned
    part far larger than the shared families' choice (λ 10 is nearly the learned part alone)."""
    extra_folds: int = 5
    """With extra rows, λ and s are chosen by this many folds over them (the deployment's own
    traffic is what a promoted head must rank), not leave-one-family-out."""


@dataclass(frozen=True, slots=True)
class LabelledPrompt:
    """A deployment's labelled row: ``label`` in [0, 1], 1 = the strong answer clearly better."""

    prompt: PromptText
    label: float


@dataclass(frozen=True, slots=True)
class Design:
    """Encoded rows with their outcomes and family."""

    x: F64
    """``[embedding, features]`` per row, unstandardised."""
    weak: F64
    strong: F64
    difficulty: F64
    units: npt.NDArray[np.str_]
    embedding_dim: int
    default_pair: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    """Rows labelled by the default pair itself (the Platt scaling is fitted on those)."""

    @property
    def length_col(self) -> int:
        """Column of the log token count."""
        return self.embedding_dim + FEATURE_NAMES.index("log_tokens")

    @property
    def struct_cols(self) -> list[int]:
        """Columns of the structure features."""
        return [self.embedding_dim + FEATURE_NAMES.index(n) for n in STRUCTURE_FEATURES]

    def names(self) -> list[str]:
        """Units in order of first appearance."""
        return list(dict.fromkeys(str(u) for u in self.units))


def encode_outcomes(
    encoder: Encoder,
    data: Outcomes,
    cache: Path | None = None,
    progress: Progress | None = None,
    chunk: int = 256,
) -> tuple[F32, npt.NDArray[np.int64]]:
    """Embeddings and untruncated token counts of ``data``'s prompts.

    A ``cache`` (``.npz`` with ``emb``, ``tokens``, ``ids``, ``max_tokens``) is read when it
    holds every id at the encoder's token budget, and written after encoding otherwise.
    """
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            budget = int(z["max_tokens"]) if "max_tokens" in z else -1
            index = {str(i): k for k, i in enumerate(z["ids"])}
            if budget == encoder.max_tokens and all(i in index for i in data.ids):
                rows = np.asarray([index[i] for i in data.ids])
                if progress:
                    progress(len(data), len(data))
                return z["emb"][rows].astype(np.float32), z["tokens"][rows].astype(np.int64)
    embs: list[F32] = []
    toks: list[npt.NDArray[np.int64]] = []
    for start in range(0, len(data), chunk):
        out = encoder.encode(data.prompts[start : start + chunk])
        embs.append(out.embeddings)
        toks.append(out.user_tokens)
        if progress:
            progress(min(start + chunk, len(data)), len(data))
    emb = np.concatenate(embs)
    tokens = np.concatenate(toks)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache,
            emb=emb,  # float32: a re-run from the cache gives the same head
            tokens=tokens,
            ids=np.asarray(data.ids, dtype=np.str_),
            max_tokens=np.asarray(encoder.max_tokens),
        )
    return emb, tokens


def corpus_design(corpus: Corpus, emb: F32, tokens: npt.NDArray[np.int64]) -> Design:
    """The design of a :class:`Corpus` from its prompts' embeddings and token counts."""
    feats = feature_matrix(corpus.outcomes.prompts, tokens)
    default = {i for i, p in enumerate(corpus.pairs) if (p.weak, p.strong) == corpus.default_pair}
    return Design(
        x=np.hstack([emb.astype(np.float64), feats.astype(np.float64)]),
        weak=corpus.outcomes.weak,
        strong=corpus.outcomes.strong,
        difficulty=corpus.difficulty,
        units=corpus.families,
        embedding_dim=int(emb.shape[1]),
        default_pair=np.asarray([int(k) in default for k in corpus.file_index]),
    )


def extra_design(encoder: Encoder, rows: Sequence[LabelledPrompt]) -> Design:
    """A deployment's labelled rows as one family (weak outcome 0, strong outcome ``label``)."""
    enc = encoder.encode([r.prompt for r in rows])
    feats = feature_matrix([r.prompt for r in rows], enc.user_tokens)
    labels = np.clip(np.asarray([r.label for r in rows], dtype=np.float64), 0.0, 1.0)
    return Design(
        x=np.hstack([enc.embeddings.astype(np.float64), feats.astype(np.float64)]),
        weak=np.zeros(len(rows)),
        strong=labels,
        difficulty=np.full(len(rows), np.nan),
        units=np.asarray([EXTRA_UNIT] * len(rows), dtype=np.str_),
        embedding_dim=int(enc.embeddings.shape[1]),
        default_pair=np.ones(len(rows), bool),
    )


def join(a: Design, b: Design) -> Design:
    """Rows of ``a`` then ``b``."""
    if a.embedding_dim != b.embedding_dim:
        raise ValueError("designs from different encoders")
    return Design(
        x=np.vstack([a.x, b.x]),
        weak=np.concatenate([a.weak, b.weak]),
        strong=np.concatenate([a.strong, b.strong]),
        difficulty=np.concatenate([a.difficulty, b.difficulty]),
        units=np.concatenate([a.units, b.units]),
        embedding_dim=a.embedding_dim,
        default_pair=np.concatenate([a.default_pair, b.default_pair]),
    )


def zscore(v: F64) -> F64:
    """``v`` standardised to mean 0 and standard deviation 1 (a constant ``v``: centred only)."""
    sd = float(v.std())
    out: F64 = (v - v.mean()) / (sd if sd > 1e-12 else 1.0)
    return out


def target_and_weight(design: Design, learned: Learned, extra_share: float) -> tuple[F64, F64]:
    """Per-family standardised target, and row weights giving every family the same total
    (the extra rows, if any, get ``extra_share`` of it)."""
    n = len(design.units)
    y = np.zeros(n)
    w = np.zeros(n)
    # Folds of the extra rows (``deployment/0`` ...) are one family for targets and weights.
    family = np.asarray(
        [str(u).split("/")[0] if is_extra(str(u)) else str(u) for u in design.units]
    )
    names = list(dict.fromkeys(family.tolist()))
    shared = [u for u in names if not is_extra(u)]
    has_extra = len(shared) < len(names)
    for u in names:
        rows = family == u
        t = zscore(design.strong[rows] - design.weak[rows])
        d = design.difficulty[rows]
        if learned.difficulty_share and not np.isnan(d).any():
            t = (1 - learned.difficulty_share) * t + learned.difficulty_share * zscore(d)
        y[rows] = t
        if is_extra(u):
            w[rows] = n * extra_share / rows.sum()
        else:
            share = (1 - extra_share) if has_extra else 1.0
            w[rows] = n * share / len(shared) / rows.sum()
    return y, w


def is_extra(unit: str) -> bool:
    """Whether ``unit`` holds a deployment's own rows (or a fold of them)."""
    return unit == EXTRA_UNIT or unit.startswith(EXTRA_UNIT + "/")


def stats_by_unit(design: Design, learned: Learned, extra_share: float) -> dict[str, UnitStats]:
    """:class:`UnitStats` of every unit for one learned setting."""
    y, w = target_and_weight(design, learned, extra_share)
    return {
        u: unit_stats(design.x[rows], y[rows], w[rows], learned.demean)
        for u in design.names()
        for rows in (design.units == u,)
    }


def columns(design: Design, learned: Learned) -> npt.NDArray[np.int64]:
    """The columns the learned part may use."""
    start = 0 if learned.embedding else design.embedding_dim
    return np.arange(start, design.x.shape[1], dtype=np.int64)
