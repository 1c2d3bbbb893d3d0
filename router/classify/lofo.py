"""Leave-one-family-out fitting: ridge from per-family sufficient statistics, and weight choice.

The head's score is ``z(log tokens) + s * Σ z(structure features) + λ * z(learned)``: the
prompt-length prior, a small structure prior (code, math, numbered steps) and a learned ridge
direction, each in standard deviations over the training rows. λ = s = 0 is the length baseline
itself, so a head can always fall back to it; λ and s are chosen by leave-one-family-out
results (:func:`select`), never by a fit to one file.

Every fit needs only sums over rows, kept per family (:class:`UnitStats`), so "train on every
family but F" is a sum of seven matrices and a 395x395 solve: the whole selection, including
a nested version that reports an honest number for the selection itself, takes seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from router.classify.metrics import apgr, pgr_curve

F64 = npt.NDArray[np.float64]

LAMBDAS: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
"""Candidate weights of the learned direction (in units of the length prior)."""
STRUCTURE_WEIGHTS: tuple[float, ...] = (0.0, 0.1, 0.2)
"""Candidate weights of each structure feature (same units)."""


@dataclass(frozen=True, slots=True)
class UnitStats:
    """Sums over one family's rows: unweighted raw moments, and the (weighted) fit's moments."""

    n: int
    u1: F64
    u2: F64
    w: float
    wx: F64
    wxx: F64
    wxy: F64
    wy: float


def unit_stats(x: F64, y: F64, w: F64, demean: bool) -> UnitStats:
    """Moments of one unit's rows; ``demean`` centres x and y on the unit's weighted mean first
    (a fixed-effects fit: only differences *within* a family are learned, not which family a
    prompt belongs to, which cannot help rank the prompts of a family never seen)."""
    xf = x
    yf = y
    if demean:
        sw = w / w.sum()
        xf = x - sw @ x
        yf = y - float(sw @ y)
    xw = xf * w[:, None]
    return UnitStats(
        n=len(y),
        u1=x.sum(axis=0),
        u2=x.T @ x,
        w=float(w.sum()),
        wx=xw.sum(axis=0),
        wxx=xw.T @ xf,
        wxy=xw.T @ yf,
        wy=float(w @ yf),
    )


@dataclass(frozen=True, slots=True)
class Direction:
    """The standardiser of the training rows and the learned direction, in standardised units."""

    mean: F64
    scale: F64
    learned: F64
    """Weights on standardised columns whose score has unit std over the training rows."""


def _total(arrays: Sequence[F64]) -> F64:
    out = np.zeros_like(arrays[0])
    for a in arrays:
        out += a
    return out


def fit_direction(
    stats: Sequence[UnitStats], alpha: float, cols: npt.NDArray[np.int64]
) -> Direction:
    """Weighted ridge on the standardised ``cols``, from the summed ``stats`` of training units."""
    n = sum(s.n for s in stats)
    mean: F64 = _total([s.u1 for s in stats]) / n
    cov: F64 = _total([s.u2 for s in stats]) / n - np.outer(mean, mean)
    scale = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    scale[scale < 1e-8] = 1.0
    w = sum(s.w for s in stats)
    mx = _total([s.wx for s in stats]) / w
    my = sum(s.wy for s in stats) / w
    c_xx = _total([s.wxx for s in stats]) - w * np.outer(mx, mx)
    c_xy = _total([s.wxy for s in stats]) - w * mx * my
    d = 1.0 / scale[cols]
    a = c_xx[np.ix_(cols, cols)] * np.outer(d, d) + alpha * np.eye(len(cols))
    coef_s = np.linalg.solve(a, c_xy[cols] * d)
    cov_s = cov[np.ix_(cols, cols)] * np.outer(d, d)
    spread = float(np.sqrt(max(float(coef_s @ cov_s @ coef_s), 0.0))) or 1.0
    learned = np.zeros(len(mean))
    learned[cols] = coef_s / spread
    return Direction(mean=mean, scale=scale, learned=learned)


@dataclass(frozen=True, slots=True)
class Components:
    """Per-row parts of the score, each from a head that did not see the row's family."""

    length: F64
    structure: F64
    learned: F64

    def combine(self, lam: float, structure_weight: float) -> F64:
        """``length + s * structure + λ * learned``."""
        out: F64 = self.length + structure_weight * self.structure + lam * self.learned
        return out


def components(
    x: F64, rows: npt.NDArray[np.bool_], d: Direction, length_col: int, struct_cols: Sequence[int]
) -> tuple[F64, F64, F64]:
    """The three score parts of ``x[rows]`` under direction ``d``."""
    z = (x[rows] - d.mean) / d.scale
    return z[:, length_col], z[:, list(struct_cols)].sum(axis=1), z @ d.learned


def held_out_components(
    x: F64,
    units: npt.NDArray[np.str_],
    stats: dict[str, UnitStats],
    alpha: float,
    cols: npt.NDArray[np.int64],
    length_col: int,
    struct_cols: Sequence[int],
    score_units: Sequence[str],
    exclude: Sequence[str] = (),
) -> Components:
    """Each row of ``score_units`` scored by a fit on every unit but its own and ``exclude``.

    Rows outside ``score_units`` are left at 0.
    """
    n = len(units)
    parts = [np.zeros(n), np.zeros(n), np.zeros(n)]
    for u in score_units:
        train = [s for k, s in stats.items() if k != u and k not in exclude]
        d = fit_direction(train, alpha, cols)
        rows = units == u
        for part, values in zip(
            parts, components(x, rows, d, length_col, struct_cols), strict=True
        ):
            part[rows] = values
    return Components(*parts)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One setting of the learned part and the two weights."""

    config: str
    """Key of the learned part's setting (target, columns, alpha, demeaning)."""
    lam: float
    structure_weight: float


def family_apgr(
    score: F64, units: npt.NDArray[np.str_], weak: F64, strong: F64, names: Sequence[str]
) -> dict[str, float]:
    """APGR of ``score`` within each family."""
    return {
        u: apgr(pgr_curve(score[rows], weak[rows], strong[rows]))
        for u in names
        for rows in (units == u,)
    }


def pick(results: dict[Candidate, dict[str, float]], baseline: dict[str, float]) -> Candidate:
    """The candidate whose worst family gains most over ``baseline`` (maximin); ties (to 1e-4)
    go to the higher mean, then to the smaller weights (closer to the baseline)."""

    def key(c: Candidate) -> tuple[float, float, float]:
        r = results[c]
        deltas = [r[u] - baseline[u] for u in baseline]
        return (
            round(min(deltas), 4),
            round(float(np.mean(deltas)), 4),
            -(c.lam + c.structure_weight),
        )

    return max(results, key=key)


def grid(
    parts: dict[str, Components],
    units: npt.NDArray[np.str_],
    weak: F64,
    strong: F64,
    names: Sequence[str],
    lambdas: Sequence[float] = LAMBDAS,
    structure_weights: Sequence[float] = STRUCTURE_WEIGHTS,
) -> dict[Candidate, dict[str, float]]:
    """Per-family APGR of every candidate (λ = 0 is shared by all configs: listed once)."""
    out: dict[Candidate, dict[str, float]] = {}
    for key, comp in parts.items():
        for lam in lambdas:
            for sw in structure_weights:
                if lam == 0.0 and key != next(iter(parts)):
                    continue
                c = Candidate(key if lam else "-", lam, sw)
                out[c] = family_apgr(comp.combine(lam, sw), units, weak, strong, names)
    return out
