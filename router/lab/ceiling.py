"""How well could any prompt-only router do on a data set? A ceiling from the other models' labels.

A router sees only the prompt. On a multi-model file such as ``arena_bench_v1`` each prompt also
carries the judged outcomes of other models. A ridge regression that predicts the strong model's
gain over the weak one from those *actual outcomes* (cross-validated by row) knows far more
about a held-out prompt's difficulty than its text can tell. Its held-out APGR is therefore a
practical upper bound for a text-only router trained on the same rows. The oracle (sorting by
the true gain) is the absolute one.

Run: ``python -m router.lab.ceiling --data ../shared/data/router/arena_bench_v1.jsonl``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from router.classify.dataset import DEFAULT_STRONG, DEFAULT_WEAK, read_rows, rescale_outcome
from router.classify.head import fit_ridge
from router.classify.metrics import FloatArray, router_metrics


@dataclass(frozen=True, slots=True)
class OtherOutcomes:
    """Weak and strong outcomes with every other model's outcome, all rescaled to [0, 1]."""

    weak: FloatArray
    strong: FloatArray
    others: FloatArray
    """``(rows, models)``; NaN where a model has no outcome for that row."""
    other_models: list[str]


@dataclass(frozen=True, slots=True)
class Ceiling:
    """APGRs of label-based routers on one file (higher is better; random is 0.5)."""

    rows: int
    other_models: int
    oracle: float
    """Routing by the true gain."""
    others_mean: float
    """Routing by how badly the other models did (minus their mean outcome), unfitted."""
    others_ridge_mean: float
    """Cross-validated ridge on the other models' outcomes, mean over the seeds."""
    others_ridge_min: float
    others_ridge_max: float


def load_other_outcomes(
    path: Path, weak_model: str = DEFAULT_WEAK, strong_model: str = DEFAULT_STRONG
) -> OtherOutcomes:
    """Rows of ``path`` that score both models; raises ``ValueError`` without other models."""
    rows = [r for r in read_rows(path) if {weak_model, strong_model} <= set(r.get("scores", {}))]
    if not rows:
        raise ValueError(f"no rows of {path} score both {weak_model!r} and {strong_model!r}")
    names = sorted({m for r in rows for m in r["scores"]} - {weak_model, strong_model})
    if not names:
        raise ValueError(f"{path} scores no model besides {weak_model!r} and {strong_model!r}")

    def outcome(row: dict[str, Any], model: str) -> float:
        if model not in row["scores"]:
            return float("nan")
        return rescale_outcome(float(row["scores"][model]), str(row.get("scale", "binary")))

    return OtherOutcomes(
        weak=np.asarray([outcome(r, weak_model) for r in rows]),
        strong=np.asarray([outcome(r, strong_model) for r in rows]),
        others=np.asarray([[outcome(r, m) for m in names] for r in rows]),
        other_models=names,
    )


def ridge_cv_scores(
    x: FloatArray, y: FloatArray, alpha: float, folds: int, seed: int
) -> FloatArray:
    """Out-of-fold predictions of a ridge regression of ``y`` on ``x`` (rows split at random)."""
    n = len(y)
    fold = np.empty(n, dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    out = np.zeros(n)
    for k in range(folds):
        train = fold != k
        coef, bias = fit_ridge(x[train], y[train], alpha)
        # Without the fold's mean target: it says nothing about a prompt, and under strong
        # shrinkage the folds' different means would decide the pooled ranking (0.63 -> 0.58).
        out[fold == k] = x[fold == k] @ coef + bias - y[train].mean()
    return out


def label_ceiling(
    data: OtherOutcomes, alpha: float = 1000.0, folds: int = 5, seeds: int = 20
) -> Ceiling:
    """Oracle, unfitted and cross-validated APGRs of routers that read other models' outcomes.

    ``alpha`` is the ridge penalty on outcomes in [0, 1] (large: little else than a weighted
    mean of the other models); each of ``seeds`` row splits into ``folds`` gives one APGR.
    """
    w, s = data.weak, data.strong
    row_mean = np.nanmean(data.others, axis=1, keepdims=True)
    filled = np.where(np.isnan(data.others), row_mean, data.others)

    def score(router: FloatArray) -> float:
        return router_metrics(router, w, s).apgr

    runs = [score(ridge_cv_scores(filled, s - w, alpha, folds, seed)) for seed in range(seeds)]
    return Ceiling(
        rows=len(w),
        other_models=len(data.other_models),
        oracle=score(s - w),
        others_mean=score(-row_mean[:, 0]),
        others_ridge_mean=float(np.mean(runs)),
        others_ridge_min=float(np.min(runs)),
        others_ridge_max=float(np.max(runs)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print the label ceiling of one data file as text or JSON."""
    p = argparse.ArgumentParser(prog="python -m router.lab.ceiling", description=__doc__)
    p.add_argument("--data", type=Path, required=True, help="a multi-model outcomes JSONL file")
    p.add_argument("--weak-model", default=DEFAULT_WEAK)
    p.add_argument("--strong-model", default=DEFAULT_STRONG)
    p.add_argument("--alpha", type=float, default=1000.0)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    try:
        data = load_other_outcomes(args.data, args.weak_model, args.strong_model)
    except (OSError, ValueError) as exc:
        p.error(str(exc))
    c = label_ceiling(data, alpha=args.alpha, seeds=args.seeds)
    if args.json:
        print(json.dumps(asdict(c)))
        return 0
    print(f"{args.data.name}: {c.rows} rows, {c.other_models} other models")
    print(f"  oracle (true gain)                      APGR {c.oracle:.3f}")
    print(f"  other models' mean outcome (unfitted)   APGR {c.others_mean:.3f}")
    print(
        f"  ridge on other models' outcomes (CV)    APGR {c.others_ridge_mean:.3f} "
        f"(min {c.others_ridge_min:.3f}, max {c.others_ridge_max:.3f} over {args.seeds} splits)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
