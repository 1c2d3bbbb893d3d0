"""Fit a candidate head on the deployment's labels, and decide whether it beats the current one.

Pure numpy; the same code serves ``router learn``, the gateway's background job and the offline
bar ``router eval --adapt``.

**The candidate.** The current head is kept as a prior: the candidate is a ridge fit of the
labels on the current head's standardised inputs *plus the current head's own score* as one
more column, so a few hundred labels move the head where they agree, and the knowledge the
current head took from the shipped data stays where they say nothing. The result is again one
linear head over the same inputs (``weights = w + c / s * w_current``), served by the same code.
When shipped data rows are given (``base``), they join the fit with their strong-minus-weak gain
as the target and ``1 - label_weight`` of the total weight.

**The guard.** The deployment's labels are split into ``folds`` held-out slices; each slice is
scored by a candidate fitted without it. The current head's scores, the candidate's held-out
scores and prompt length are each turned into APGR on the labels (each label's gain ``g`` in
[-1, 1] as outcomes: strong ``(1 + g) / 2``, weak ``(1 - g) / 2``), so a prompt where the judge
preferred the weak answer counts against sending it up, as it does in the real metric. The
candidate is promoted only if its APGR beats the current head's by ``min_gain`` and is not below
length's. The verdict carries a 95 % paired bootstrap interval of candidate minus current over
the labels (``lead``), for the promotion log; with ``sure_lead`` the interval must also lie
above 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from router.classify.head import LinearHead, fit_platt, fit_ridge
from router.classify.metrics import (
    DeltaInterval,
    apgr,
    apgr_delta_interval,
    gap_is_clear,
    pgr_curve,
)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
LEAD_RESAMPLES = 500
"""Bootstrap draws for :attr:`GuardResult.lead`."""


@dataclass(frozen=True, slots=True)
class CandidateConfig:
    """Hyper-parameters of the candidate fit and the guard."""

    alpha: float = 3000.0
    """Ridge penalty on the standardised inputs (the prior column is penalised alike)."""
    folds: int = 5
    min_gain: float = 0.01
    sure_lead: bool = False
    """Also require the 95 % interval of the held-out lead over the current head to lie above 0
    (``learning.require_sure_lead``): fewer promotions on a few hundred noisy labels."""
    label_weight: float = 0.5
    """Share of the total weight carried by the labels when shipped rows (``base``) are given."""
    seed: int = 0


@dataclass(frozen=True, slots=True)
class Rows:
    """Encoded rows: embeddings, features, prompt lengths and a target."""

    embeddings: F32
    features: F32
    tokens: npt.NDArray[np.int64]
    target: F64
    """The strong tier's gain in [-1, 1]: 1 clearly better, 0 a tie (or not needed), -1 worse
    (see :attr:`router.learning.labels.Label.gain`); the strong-minus-weak outcome for shipped
    rows."""

    def __len__(self) -> int:
        return len(self.target)

    def take(self, index: npt.NDArray[np.int64]) -> Rows:
        """The rows at ``index``."""
        return Rows(
            self.embeddings[index], self.features[index], self.tokens[index], self.target[index]
        )


@dataclass(frozen=True, slots=True)
class GuardResult:
    """The held-out comparison behind a promotion decision."""

    labels: int
    positives: int
    current_apgr: float
    candidate_apgr: float
    length_apgr: float
    promoted: bool
    reason: str
    folds: int
    extra: dict[str, object] = field(default_factory=dict)
    lead: DeltaInterval | None = None
    """Candidate (held out) minus current APGR on the labels, with a 95 % bootstrap interval."""

    def as_dict(self) -> dict[str, object]:
        """Rounded numbers for logs and JSON."""
        return {
            "labels": self.labels,
            "positives": self.positives,
            "current_apgr": round(self.current_apgr, 4),
            "candidate_apgr": round(self.candidate_apgr, 4),
            "length_apgr": round(self.length_apgr, 4),
            "promoted": self.promoted,
            "reason": self.reason,
            "folds": self.folds,
            **({} if self.lead is None else {"candidate_minus_current": self.lead.as_dict()}),
            **self.extra,
        }


def label_apgr(scores: npt.ArrayLike, gain: npt.ArrayLike) -> float:
    """APGR of ``scores`` on labelled gains in [-1, 1] (strong outcome ``(1 + gain) / 2``,
    weak outcome ``(1 - gain) / 2``); 0.5 when the strong model is not better on average."""
    g = np.asarray(gain, dtype=np.float64)
    if g.sum() <= 0:
        return 0.5  # the strong model does not help on these labels: no order is better
    return apgr(pgr_curve(scores, (1.0 - g) / 2, (1.0 + g) / 2))


def fit_candidate(
    current: LinearHead, rows: Rows, config: CandidateConfig, base: Rows | None = None
) -> LinearHead:
    """The candidate head: ``rows`` (and ``base``) fitted with the current head as a prior."""
    fit = rows if base is None else _concat(rows, base)
    weight = np.ones(len(rows))
    if base is not None and len(base):
        share = config.label_weight
        weight = np.concatenate(
            [np.full(len(rows), share / len(rows)), np.full(len(base), (1 - share) / len(base))]
        )
        weight *= len(weight)
    xs = current.design(fit.embeddings, fit.features)
    prior = xs @ current.weights
    spread = float(prior.std()) or 1.0
    z = np.hstack([xs, (prior / spread)[:, None]])
    coef, bias = fit_ridge(z, fit.target, config.alpha, weight)
    weights = coef[:-1] + (coef[-1] / spread) * current.weights
    raw = xs[: len(rows)] @ weights + bias
    a, b = fit_platt(raw, (rows.target > 0).astype(np.float64))
    return LinearHead(
        mean=current.mean,
        scale=current.scale,
        weights=weights,
        bias=bias,
        platt_a=a,
        platt_b=b,
        feature_names=current.feature_names,
        embedding_dim=current.embedding_dim,
    )


def _concat(a: Rows, b: Rows) -> Rows:
    return Rows(
        np.concatenate([a.embeddings, b.embeddings]),
        np.concatenate([a.features, b.features]),
        np.concatenate([a.tokens, b.tokens]),
        np.concatenate([a.target, b.target]),
    )


def fold_of(n: int, folds: int, seed: int) -> npt.NDArray[np.int64]:
    """A fixed assignment of ``n`` rows to ``folds`` slices (round robin over a shuffle)."""
    out = np.zeros(n, dtype=np.int64)
    out[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return out


def guard(
    current: LinearHead, rows: Rows, config: CandidateConfig, base: Rows | None = None
) -> GuardResult:
    """Score the current head and held-out candidates on ``rows``' labels, beside length."""
    n = len(rows)
    folds = max(2, min(config.folds, n))
    fold = fold_of(n, folds, config.seed)
    held_out = np.zeros(n)
    for k in range(folds):
        test = np.flatnonzero(fold == k)
        train = np.flatnonzero(fold != k)
        head = fit_candidate(current, rows.take(train), config, base)
        t = rows.take(test)
        held_out[test] = head.raw(t.embeddings, t.features)
    y = rows.target
    current_scores = current.raw(rows.embeddings, rows.features)
    cur = label_apgr(current_scores, y)
    cand = label_apgr(held_out, y)
    length = label_apgr(rows.tokens.astype(np.float64), y)
    lead = (
        apgr_delta_interval(held_out, current_scores, (1 - y) / 2, (1 + y) / 2, LEAD_RESAMPLES)
        if gap_is_clear(y)
        else None
    )
    if cand <= cur + config.min_gain:
        promoted, reason = False, f"candidate {cand:.4f} <= current {cur:.4f} + {config.min_gain}"
    elif cand < length:
        promoted, reason = False, f"candidate {cand:.4f} < prompt length {length:.4f}"
    elif config.sure_lead and lead is None:
        promoted, reason = False, "lead over current not sure: no clear strong-tier gain"
    elif config.sure_lead and lead is not None and lead.low <= 0:
        promoted, reason = False, f"lead over current not sure: {lead.format()} (95%) holds 0"
    else:
        promoted, reason = True, f"candidate {cand:.4f} beats current {cur:.4f}"
    return GuardResult(
        labels=n,
        positives=int((y > 0).sum()),
        current_apgr=cur,
        candidate_apgr=cand,
        length_apgr=length,
        promoted=promoted,
        reason=reason,
        folds=folds,
        lead=lead,
    )


def train_and_decide(
    current: LinearHead, rows: Rows, config: CandidateConfig, base: Rows | None = None
) -> tuple[GuardResult, LinearHead | None]:
    """The guard's verdict and, when it promotes, the candidate fitted on every label."""
    verdict = guard(current, rows, config, base)
    if not verdict.promoted:
        return verdict, None
    return verdict, fit_candidate(current, rows, config, base)
