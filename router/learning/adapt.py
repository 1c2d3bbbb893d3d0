"""The offline adaptation bar: replay a labelled file as traffic and learn from K of its labels.

A file of ``../shared/data/router`` stands in for a deployment: its rows, in a fixed shuffled
order, are the traffic; the first ``K`` get a label as the judge would give it (the strong
answer better, a tie, or the weak answer better, by the file's two outcomes), and the same
candidate fit and guard as ``router learn`` (:mod:`router.learning.candidate`) decide whether
the head is replaced. The rest of the file measures APGR before and after, beside prompt length,
with the real outcomes (the metric of ``router eval``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from router.classify.dataset import Outcomes, load_outcomes, read_rows
from router.classify.features import feature_matrix
from router.classify.inputs import PromptText
from router.classify.metrics import (
    DeltaInterval,
    RouterMetrics,
    apgr_delta_interval,
    router_metrics,
)
from router.classify.trained import Scorer
from router.learning.candidate import CandidateConfig, GuardResult, Rows, train_and_decide

MIN_REST = 100
"""Rows always kept out of the labelled share to measure on (a small file gets fewer labels)."""


def first_two_models(path: Path) -> tuple[str, str]:
    """The first two models of the file's first row: ``(weak, strong)``."""
    for row in read_rows(path):
        names = list((row.get("scores") or {}).keys())
        if len(names) >= 2:
            return names[0], names[1]
    raise ValueError(f"{path}: no row scores two models")


def encode_rows(
    scorer: Scorer, prompts: Sequence[PromptText], target: npt.ArrayLike, batch: int = 256
) -> Rows:
    """Embeddings, features and lengths of ``prompts`` with the serving encoder."""
    embs: list[npt.NDArray[np.float32]] = []
    toks: list[npt.NDArray[np.int64]] = []
    for start in range(0, len(prompts), batch):
        out = scorer.encoder.encode(prompts[start : start + batch])
        embs.append(out.embeddings)
        toks.append(out.user_tokens)
    emb = np.concatenate(embs) if embs else np.zeros((0, scorer.head.embedding_dim), np.float32)
    tokens = np.concatenate(toks) if toks else np.zeros(0, np.int64)
    feats = feature_matrix(list(prompts), tokens)
    return Rows(emb, feats, tokens, np.asarray(target, dtype=np.float64))


@dataclass(frozen=True, slots=True)
class AdaptResult:
    """Before and after K labels, beside length, on the rest of the file."""

    file: str
    weak_model: str
    strong_model: str
    k_requested: int
    k: int
    n_rest: int
    before: RouterMetrics
    after: RouterMetrics
    length: RouterMetrics
    guard: GuardResult
    after_minus_before: DeltaInterval
    """APGR after minus before on the rest, with a paired bootstrap interval."""
    after_minus_length: DeltaInterval
    """APGR after minus prompt length's on the rest, with a paired bootstrap interval."""

    def as_dict(self) -> dict[str, object]:
        """The JSON document of ``router eval --adapt --json``."""
        return {
            "before": self.before.as_dict(),
            "after": self.after.as_dict(),
            "length": self.length.as_dict(),
            "k": self.k,
            "n_rest": self.n_rest,
            "k_requested": self.k_requested,
            "file": self.file,
            "weak_model": self.weak_model,
            "strong_model": self.strong_model,
            "promoted": self.guard.promoted,
            "guard": self.guard.as_dict(),
            "after_minus_before": self.after_minus_before.as_dict(),
            "after_minus_length": self.after_minus_length.as_dict(),
        }


def split(n: int, k: int, seed: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The replay order's first ``k`` rows (labelled) and the rest (measured)."""
    k = max(0, min(k, n - min(MIN_REST, n // 2)))
    order = np.random.default_rng(seed).permutation(n)
    return order[:k], order[k:]


def run_adapt(
    path: Path,
    k: int,
    scorer: Scorer,
    weak_model: str,
    strong_model: str,
    config: CandidateConfig | None = None,
    seed: int = 0,
) -> AdaptResult:
    """Replay ``path``, learn from its first ``k`` labels, measure on the rest."""
    cfg = config or CandidateConfig()
    data: Outcomes = load_outcomes([path], weak_model, strong_model)
    labelled, rest = split(len(data), k, seed)
    # The judge's verdict on each row: strong better (1), a tie (0) or weak better (-1).
    verdict = np.sign(data.strong - data.weak)
    rows = encode_rows(scorer, data.prompts, verdict)
    train, test = rows.take(labelled), rows.take(rest)
    weak, strong = data.weak[rest], data.strong[rest]
    before_scores = scorer.head.raw(test.embeddings, test.features)
    result, candidate = train_and_decide(scorer.head, train, cfg)
    after_scores = (
        candidate.raw(test.embeddings, test.features) if candidate is not None else before_scores
    )
    length_scores = test.tokens.astype(np.float64)
    return AdaptResult(
        file=path.name,
        weak_model=weak_model,
        strong_model=strong_model,
        k_requested=k,
        k=len(labelled),
        n_rest=len(rest),
        before=router_metrics(before_scores, weak, strong),
        after=router_metrics(after_scores, weak, strong),
        length=router_metrics(length_scores, weak, strong),
        guard=result,
        after_minus_before=apgr_delta_interval(after_scores, before_scores, weak, strong),
        after_minus_length=apgr_delta_interval(after_scores, length_scores, weak, strong),
    )
