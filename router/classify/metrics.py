"""Routing quality metrics (RouteLLM's definitions): PGR curve, APGR and CPT.

Sort prompts by router score, send the top share ``s`` to the strong model and the rest to the
weak one, and take the mean outcome. ``PGR(s) = (routed - weak) / (strong - weak)``; APGR is the
area under PGR over ``s`` in [0, 1]; ``CPT(x)`` is the smallest strong share with ``PGR >= x``.
Tied scores are routed together, and the curve is linear between tie groups (the expectation
under random tie-breaking), so a constant router gets exactly the random router's 0.5.

:func:`apgr_delta_interval` says how sure a difference between two routers on the same prompts
is: a paired bootstrap over the prompts (both routers see the same resample).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Curve:
    """Quality against strong-call share, at every tie-group boundary."""

    share: FloatArray
    """Strong-call share, from 0 to 1."""
    quality: FloatArray
    """Mean outcome of the routed answers at that share."""
    pgr: FloatArray
    """Performance gap recovered at that share."""


def pgr_curve(scores: npt.ArrayLike, weak: npt.ArrayLike, strong: npt.ArrayLike) -> Curve:
    """The routing curve for router ``scores`` and the two models' per-prompt outcomes."""
    s = np.asarray(scores, dtype=np.float64)
    w = np.asarray(weak, dtype=np.float64)
    g = np.asarray(strong, dtype=np.float64)
    n = len(s)
    if n == 0 or len(w) != n or len(g) != n:
        raise ValueError("scores, weak and strong must be non-empty and of equal length")
    order = np.argsort(-s, kind="stable")
    gain = (g - w)[order]
    cum = np.concatenate([[0.0], np.cumsum(gain)])
    sorted_s = s[order]
    # Boundaries: 0, the end of each tie group, n.
    ends = np.flatnonzero(np.diff(sorted_s) != 0) + 1
    k = np.concatenate([[0], ends, [n]]).astype(np.int64)
    quality = (w.sum() + cum[k]) / n
    weak_mean = w.mean()
    gap = g.mean() - weak_mean
    pgr = (quality - weak_mean) / gap if gap != 0 else np.zeros_like(quality)
    return Curve(share=k / n, quality=quality, pgr=pgr)


def apgr(curve: Curve) -> float:
    """Area under the PGR curve over strong share in [0, 1] (random routing: 0.5)."""
    return float(np.trapezoid(curve.pgr, curve.share))


def cpt(curve: Curve, target_pgr: float) -> float:
    """The smallest strong-call share at which PGR reaches ``target_pgr`` (1.0 if never)."""
    p, x = curve.pgr, curve.share
    hit = np.flatnonzero(p >= target_pgr)
    if len(hit) == 0:
        return 1.0
    i = int(hit[0])
    if i == 0:
        return float(x[0])
    p0, p1 = p[i - 1], p[i]
    frac = (target_pgr - p0) / (p1 - p0) if p1 != p0 else 1.0
    return float(x[i - 1] + frac * (x[i] - x[i - 1]))


@dataclass(frozen=True, slots=True)
class RouterMetrics:
    """The headline numbers for one router on one data set."""

    apgr: float
    cpt50: float
    cpt80: float

    def as_dict(self) -> dict[str, float]:
        """Rounded numbers for JSON and metadata."""
        return {
            "apgr": round(self.apgr, 4),
            "cpt50": round(self.cpt50, 4),
            "cpt80": round(self.cpt80, 4),
        }


def router_metrics(
    scores: npt.ArrayLike, weak: npt.ArrayLike, strong: npt.ArrayLike
) -> RouterMetrics:
    """APGR, CPT(50%) and CPT(80%) of one router."""
    c = pgr_curve(scores, weak, strong)
    return RouterMetrics(apgr=apgr(c), cpt50=cpt(c, 0.5), cpt80=cpt(c, 0.8))


@dataclass(frozen=True, slots=True)
class DeltaInterval:
    """APGR(a) − APGR(b) on the same prompts, with a paired bootstrap interval."""

    delta: float
    """The difference on the prompts themselves."""
    low: float
    """Lower end of the interval (the ``(1 - level) / 2`` quantile of the resampled deltas)."""
    high: float
    """Upper end of the interval."""
    level: float
    """Coverage of the interval, e.g. 0.95."""
    resamples: int

    def as_dict(self) -> dict[str, float]:
        """Rounded numbers for JSON."""
        return {
            "delta": round(self.delta, 4),
            "low": round(self.low, 4),
            "high": round(self.high, 4),
            "level": self.level,
            "resamples": self.resamples,
        }

    def format(self) -> str:
        """``+0.012 [-0.004, +0.029]``."""
        return f"{self.delta:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def gap_is_clear(gain: npt.ArrayLike) -> bool:
    """Whether the strong-minus-weak ``gain`` is positive on average beyond two standard errors.

    APGR divides by the mean gain; where the rows cannot tell it from 0, bootstrap resamples
    flip its sign and an interval of APGR differences means nothing.
    """
    g = np.asarray(gain, dtype=np.float64)
    return len(g) > 1 and float(g.mean()) > 2 * float(g.std()) / np.sqrt(len(g))


def apgr_delta_interval(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    weak: npt.ArrayLike,
    strong: npt.ArrayLike,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> DeltaInterval:
    """APGR of router scores ``a`` minus that of ``b``, with a paired bootstrap interval.

    Each resample draws the prompts with replacement and scores both routers on the same draw
    (PGR normalised by that draw's own weak/strong gap), so the prompts' shared difficulty
    cancels and only the routers' disagreement counts. Seeded: the same input gives the same
    interval. Identical routers give exactly ``[0, 0]``.
    """
    sa, sb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    w, g = np.asarray(weak, dtype=np.float64), np.asarray(strong, dtype=np.float64)
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    delta = apgr(pgr_curve(sa, w, g)) - apgr(pgr_curve(sb, w, g))
    if np.array_equal(sa, sb):
        return DeltaInterval(delta, 0.0, 0.0, level, resamples)
    rng = np.random.default_rng(seed)
    n = len(sa)
    deltas = np.empty(resamples)
    for i in range(resamples):
        idx = rng.integers(0, n, n)
        wi, gi = w[idx], g[idx]
        deltas[i] = apgr(pgr_curve(sa[idx], wi, gi)) - apgr(pgr_curve(sb[idx], wi, gi))
    tail = (1 - level) / 2
    low, high = np.quantile(deltas, [tail, 1 - tail])
    return DeltaInterval(float(delta), float(low), float(high), level, resamples)
