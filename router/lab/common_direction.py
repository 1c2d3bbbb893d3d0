"""The direction every training family agrees on: a min-norm point of their effects (lab).

Run ``python -m router.lab.common_direction --data ../shared/data/router --embeddings-cache E.npz``.

The invariance filter (:mod:`router.lab.invariant`) keeps a column only where its sign agrees
across the training families, one column at a time. This asks the same question of whole
directions. Per training family ``g``, with length regressed out of the columns and of the gain
(all standardised within ``g``), ``b_g`` is the vector of the columns' partial covariances with
the gain: a learned score ``s = X w`` then co-varies with the gain by ``w · b_g`` in that family.
The direction that most improves the *worst* training family for a given spread of ``s``,

    max over w with w' Σ w <= 1 of  min over g of  w · b_g,

is (in coordinates whitened by the pooled within-family covariance ``Σ``, shrunk by ``ridge``)
the min-norm point of the convex hull of the ``b_g`` (as in multiple-gradient descent for
multi-task learning). If the hull holds the origin, no direction helps every training family
and the learned part is 0 (length alone). Otherwise every training family's partial covariance
is positive by construction; whether the held-out family's is too is what the table measures.

Columns: the 11 cheap features and the first ``K`` principal components of the embedding
(fitted without the held-out family). ``score = z(log tokens) + λ · z(X w)``, z within the family
scored (no labels read). The nested run chooses (K, ridge, λ), λ 0 included, for each held-out
family without it, by the rule's :func:`router.classify.lofo.pick` (worst gain over length
first).
"""

from __future__ import annotations

from collections.abc import Sequence

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

Setting = tuple[int, float, float]
"""(principal components K, ridge, λ); ridge ``inf``: no whitening."""


def min_norm_point(vectors: F64, steps: int = 2000) -> F64:
    """The point of the convex hull of ``vectors`` (rows) nearest the origin (Frank-Wolfe with
    exact line search; exact to ~1e-6 for a handful of rows)."""
    m = len(vectors)
    gram = vectors @ vectors.T
    lam = np.full(m, 1.0 / m)
    for _ in range(steps):
        grad = gram @ lam
        i = int(np.argmin(grad))
        d = -lam.copy()
        d[i] += 1.0
        dgd = float(d @ gram @ d)
        if dgd <= 1e-18:
            break
        step = float(np.clip(-(grad @ d) / dgd, 0.0, 1.0))
        if step <= 1e-12:
            break
        lam = lam + step * d
    out: F64 = lam @ vectors
    return out


def family_effects(cols: F64, gain: F64, length: F64) -> tuple[F64, F64]:
    """Partial covariances of the columns with the gain given length (one family's rows), and
    the columns' covariance after length is regressed out; columns standardised first."""
    lz = zscore(length)
    y = zscore(gain)
    y = y - float((y * lz).mean()) * lz
    sd = cols.std(0)
    x = (cols - cols.mean(0)) / np.where(sd > 1e-12, sd, 1.0)
    x = x - np.outer(lz, (x * lz[:, None]).mean(0))
    b: F64 = (x * y[:, None]).mean(0)
    cov: F64 = (x.T @ x) / len(x)
    return b, cov


def common_direction(effects: Sequence[F64], covs: Sequence[F64], ridge: float) -> F64:
    """Weights ``w`` on the (within-family standardised) columns; zeros if none helps all."""
    b = np.asarray(effects)
    if np.isinf(ridge):
        return min_norm_point(b)
    sigma = np.mean(np.asarray(covs), axis=0) + ridge * np.eye(b.shape[1])
    vals, vecs = np.linalg.eigh(sigma)
    inv_half = vecs @ np.diag(vals**-0.5) @ vecs.T
    u = min_norm_point(b @ inv_half)  # b_g in whitened coordinates
    w: F64 = inv_half @ u
    return w


def _columns(design: Design, k: int, exclude: Sequence[str]) -> F64:
    emb = design.x[:, : design.embedding_dim]
    keep = ~np.isin(design.units, list(exclude))
    mean = emb[keep].mean(0)
    _, _, vt = np.linalg.svd(emb[keep][::3] - mean, full_matrices=False)
    out: F64 = np.hstack([design.x[:, design.embedding_dim :], (emb - mean) @ vt[:k].T])
    return out


def _effects(design: Design, cols: F64) -> dict[str, tuple[F64, F64]]:
    gain = design.strong - design.weak
    length = design.x[:, design.length_col]
    return {
        u: family_effects(cols[rows], gain[rows], length[rows])
        for u in design.names()
        for rows in (design.units == u,)
    }


def score(
    design: Design,
    cols: F64,
    effects: dict[str, tuple[F64, F64]],
    train: Sequence[str],
    target: str,
    ridge: float,
    lam: float,
) -> F64:
    """``target``'s rows scored by the direction fitted on ``train`` (other rows 0)."""
    rows = design.units == target
    out = np.zeros(len(design.units))
    length = zscore(design.x[rows, design.length_col])
    if lam == 0:
        out[rows] = length
        return out
    w = common_direction([effects[u][0] for u in train], [effects[u][1] for u in train], ridge)
    x = cols[rows]
    sd = x.std(0)
    learned = ((x - x.mean(0)) / np.where(sd > 1e-12, sd, 1.0)) @ w
    out[rows] = length + lam * zscore(learned)
    return out


def scorer(design: Design) -> Scorer[Setting]:
    """The direction's :data:`router.lab.family_table.Scorer`; columns and effects cached per
    (K, held out)."""
    cache: dict[tuple[int, str], tuple[F64, dict[str, tuple[F64, F64]]]] = {}

    def scored(setting: Setting, held_out: str, train: Sequence[str], target: str) -> F64:
        k, ridge, lam = setting
        if (k, held_out) not in cache:
            cols = _columns(design, k, [held_out])
            cache[(k, held_out)] = (cols, _effects(design, cols))
        cols, effects = cache[(k, held_out)]
        return score(design, cols, effects, train, target, ridge, lam)

    return scored


def _settings(
    ks: Sequence[int], ridges: Sequence[float], lambdas: Sequence[float]
) -> list[Setting]:
    return [(k, ridge, lam) for k in ks for ridge in ridges for lam in lambdas]


def lofo_table(
    design: Design, ks: Sequence[int], ridges: Sequence[float], lambdas: Sequence[float]
) -> dict[Setting, dict[str, float]]:
    """Per setting, each family's APGR scored by the direction fitted on the others."""
    return lofo_rows(design, _settings(ks, ridges, lambdas), scorer(design))


def nested(
    design: Design, ks: Sequence[int], ridges: Sequence[float], lambdas: Sequence[float]
) -> dict[str, tuple[Setting, F64]]:
    """Per held-out family: the setting chosen without it, and its scores on the family's rows."""
    return nested_choice(design, _settings(ks, ridges, lambdas), scorer(design))


def main(argv: Sequence[str] | None = None) -> int:
    """Print the leave-one-family-out table (gains over length) and the nested choice."""
    p = lab_parser("python -m router.lab.common_direction", __doc__, [8, 16, 32, 64])
    p.add_argument("--ridge", type=float, nargs="+", default=[0.1, float("inf")])
    args = p.parse_args(argv)
    design = lab_design(args.data, args.max_tokens, args.embeddings_cache)
    table = lofo_table(design, args.k, args.ridge, args.lambdas)
    rows = {f"K {k:<3} ridge {ridge:<5g} λ {lam:<5g}": r
            for (k, ridge, lam), r in table.items() if lam != 0}  # fmt: skip
    print("\n".join(gain_lines(length_apgr(design), rows, 26)))
    picked = nested(design, args.k, args.ridge, args.lambdas)
    chosen = {f: (f"K {k} ridge {ridge:g} λ {lam:g}", s)
              for f, ((k, ridge, lam), s) in picked.items()}  # fmt: skip
    print("\n".join(nested_lines(design, chosen, args.resamples)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
