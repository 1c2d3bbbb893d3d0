"""Only what holds in every family: an invariance filter on top of length (lab tooling).

Run ``python -m router.lab.invariant --data ../shared/data/router --embeddings-cache E.npz``.

Every learned direction tried so far helps some held-out families and hurts others, because a
ridge fitted on seven families keeps whatever separates hard from easy prompts in any of them.
This keeps a column only where its effect agrees across the training families:

1. columns: the 11 cheap features and the first ``K`` principal components of the embedding
   (fitted without the held-out family's prompts);
2. per training family, each column's **partial correlation with the gain given length** (both
   standardised within the family, length regressed out of each);
3. a column is kept when its sign agrees in all training families but ``slack``; its weight is
   that sign times its mean absolute partial correlation; the rest weigh 0;
4. ``score = z(log tokens) + λ · z(Σ weight · z(column))``, z's over the training rows.

The table scores each family with the filter fitted on the other seven, for every (K, slack,
λ). The **nested** run then chooses (K, slack, λ) for each held-out family F without F: each
other family G is scored by a filter fitted on the six families that are neither F nor G, and
the setting whose worst G gains most over length (then the mean, then the smaller λ: the rule's
own :func:`router.classify.lofo.pick`) scores F.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from router.classify.design import Design, zscore
from router.classify.lofo import F64
from router.lab.family_table import (
    Scorer,
    gain_lines,
    lab_design,
    lab_parser,
    length_apgr,
    lofo_rows,
    nested_choice,
    nested_lines,
)

Setting = tuple[int, int, float]
"""(principal components K, slack, λ)."""


def partial_effects(cols: F64, gain: F64, length: F64) -> F64:
    """Each column's correlation with ``gain`` once ``length`` is regressed out of both (rows of
    one family)."""
    lz = zscore(length)
    y = zscore(gain)
    y = y - float((y * lz).mean()) * lz
    x = (cols - cols.mean(0)) / np.where(cols.std(0) > 1e-12, cols.std(0), 1.0)
    x = x - np.outer(lz, (x * lz[:, None]).mean(0))
    sx = x.std(0)
    sy = float(y.std())
    out: F64 = (x * y[:, None]).mean(0) / np.where(sx > 1e-12, sx, 1.0) / (sy or 1.0)
    return out


Magnitude = Literal["mean", "min", "equal"]


def agreeing_weights(effects: F64, slack: int, magnitude: Magnitude = "mean") -> F64:
    """Weights from per-family effects (``[families, columns]``): where all families but
    ``slack`` agree on a column's sign, that sign times its mean absolute effect (``min``: the
    ``slack + 1``-th smallest absolute effect; ``equal``: 1), else 0."""
    need = effects.shape[0] - slack
    up = (effects > 0).sum(0) >= need
    down = (effects < 0).sum(0) >= need
    sign = np.where(up, 1.0, np.where(down, -1.0, 0.0))
    if magnitude == "equal":
        return sign
    if magnitude == "min":
        out: F64 = sign * np.sort(np.abs(effects), axis=0)[slack]
        return out
    out = sign * np.abs(effects.mean(0))
    return out


@dataclass(frozen=True, slots=True)
class Columns:
    """Candidate columns with each family's partial effects."""

    values: F64
    effects: dict[str, F64]


def columns(design: Design, k: int, exclude: Sequence[str]) -> Columns:
    """The features and ``k`` principal components of the embedding (fitted on rows outside
    ``exclude``), with every family's partial effects."""
    emb = design.x[:, : design.embedding_dim]
    keep = ~np.isin(design.units, list(exclude))
    mean = emb[keep].mean(0)
    _, _, vt = np.linalg.svd(emb[keep][::3] - mean, full_matrices=False)
    values = np.hstack([design.x[:, design.embedding_dim :], (emb - mean) @ vt[:k].T])
    gain = design.strong - design.weak
    length = design.x[:, design.length_col]
    effects = {
        u: partial_effects(values[rows], gain[rows], length[rows])
        for u in design.names()
        for rows in (design.units == u,)
    }
    return Columns(values, effects)


def score(
    design: Design,
    cols: Columns,
    train: Sequence[str],
    target: str,
    slack: int,
    lam: float,
    magnitude: Magnitude = "mean",
) -> F64:
    """``target``'s rows scored by the filter fitted on ``train`` (other rows 0)."""
    w = agreeing_weights(np.asarray([cols.effects[u] for u in train]), slack, magnitude)
    tr = np.isin(design.units, list(train))
    rows = design.units == target
    mean = cols.values[tr].mean(0)
    sd = np.where(cols.values[tr].std(0) > 1e-12, cols.values[tr].std(0), 1.0)
    ref = ((cols.values[tr] - mean) / sd) @ w
    learned = (((cols.values[rows] - mean) / sd) @ w - ref.mean()) / (ref.std() or 1.0)
    length = design.x[:, design.length_col]
    out = np.zeros(len(design.units))
    out[rows] = (length[rows] - length[tr].mean()) / length[tr].std() + lam * learned
    return out


def scorer(design: Design, magnitude: Magnitude = "mean") -> Scorer[Setting]:
    """The filter's :data:`router.lab.family_table.Scorer`; columns cached per (K, held out)."""
    cache: dict[tuple[int, str], Columns] = {}

    def scored(setting: Setting, held_out: str, train: Sequence[str], target: str) -> F64:
        k, slack, lam = setting
        if (k, held_out) not in cache:
            cache[(k, held_out)] = columns(design, k, [held_out])
        return score(design, cache[(k, held_out)], train, target, slack, lam, magnitude)

    return scored


def _settings(ks: Sequence[int], slacks: Sequence[int], lambdas: Sequence[float]) -> list[Setting]:
    return [(k, slack, lam) for k in ks for slack in slacks for lam in lambdas]


def lofo_table(
    design: Design,
    ks: Sequence[int],
    slacks: Sequence[int],
    lambdas: Sequence[float],
    magnitude: Magnitude = "mean",
) -> dict[Setting, dict[str, float]]:
    """Per setting, each family's APGR scored by the filter fitted on the others."""
    return lofo_rows(design, _settings(ks, slacks, lambdas), scorer(design, magnitude))


def nested(
    design: Design,
    ks: Sequence[int],
    slacks: Sequence[int],
    lambdas: Sequence[float],
    magnitude: Magnitude = "mean",
) -> dict[str, tuple[Setting, F64]]:
    """Per held-out family, the setting chosen without it and its scores on the family's rows."""
    return nested_choice(design, _settings(ks, slacks, lambdas), scorer(design, magnitude))


def main(argv: Sequence[str] | None = None) -> int:
    """Print the leave-one-family-out table (gains over length) and the nested choice."""
    p = lab_parser("python -m router.lab.invariant", __doc__, [16, 32, 64])
    p.add_argument("--slack", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--weights", choices=["mean", "min", "equal"], default="mean")
    args = p.parse_args(argv)
    design = lab_design(args.data, args.max_tokens, args.embeddings_cache)
    table = lofo_table(design, args.k, args.slack, args.lambdas, args.weights)
    rows = {f"K {k:<3} slack {slack} λ {lam:<5g}": r for (k, slack, lam), r in table.items()}
    print("\n".join(gain_lines(length_apgr(design), rows, 22)))
    picked = nested(design, args.k, args.slack, args.lambdas, args.weights)
    chosen = {f: (f"K {k} slack {slack} λ {lam:g}", sc)
              for f, ((k, slack, lam), sc) in picked.items()}  # fmt: skip
    print("\n".join(nested_lines(design, chosen, args.resamples)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
