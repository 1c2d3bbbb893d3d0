"""Choosing the head's weights by leave-one-family-out validation, and fitting the final head.

:func:`validate` scores every family with heads fitted on the other families, for every learned
setting and every (λ, s) (:mod:`router.classify.lofo`), and keeps the candidate whose worst family
gains most over prompt length. The nested run redoes that whole choice without the family it
then scores, so its numbers are free of the selection. :func:`select_on_extra` chooses on a
deployment's own rows instead (k folds over them). :func:`final_head` fits the chosen head on
every row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from router.classify.design import (
    EXTRA_UNIT,
    Design,
    Learned,
    TrainConfig,
    columns,
    is_extra,
    stats_by_unit,
    target_and_weight,
)
from router.classify.features import FEATURE_NAMES
from router.classify.head import LinearHead, fit_platt
from router.classify.lofo import (
    Candidate,
    Components,
    UnitStats,
    fit_direction,
    grid,
    held_out_components,
    pick,
)
from router.classify.metrics import (
    DeltaInterval,
    RouterMetrics,
    apgr_delta_interval,
    router_metrics,
)

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Validation:
    """Leave-one-family-out numbers of the chosen candidate beside prompt length."""

    chosen: Candidate
    families: list[str]
    rows: dict[str, int]
    router: dict[str, RouterMetrics]
    length: dict[str, RouterMetrics]
    nested: dict[str, RouterMetrics]
    """Per family, the candidate chosen without that family, scored on it (empty: not run)."""
    nested_choices: dict[str, Candidate]
    candidates: int
    scores: F64 | None = None
    """Every shared row's held-out score under the chosen candidate (design order)."""
    nested_scores: F64 | None = None
    """Every shared row's score under the candidate chosen without its family (if run)."""

    def as_dict(self) -> dict[str, object]:
        """JSON-ready (model metadata, ``router eval --json``)."""
        fams: dict[str, object] = {}
        for f in self.families:
            entry: dict[str, object] = {
                "rows": self.rows[f],
                "router": self.router[f].as_dict(),
                "prompt_length": self.length[f].as_dict(),
            }
            if f in self.nested:
                c = self.nested_choices[f]
                entry["nested_router"] = self.nested[f].as_dict()
                entry["nested_choice"] = {
                    "learned": c.config,
                    "lam": c.lam,
                    "structure": c.structure_weight,
                }
            fams[f] = entry
        out: dict[str, object] = {
            "method": "leave-one-family-out: each family scored by heads fitted on the others",
            "selection": "maximise the worst family's APGR gain over prompt length (ties: higher "
            f"mean, then smaller weights) over {self.candidates} candidates",
            "chosen": {
                "learned": self.chosen.config,
                "lam": self.chosen.lam,
                "structure": self.chosen.structure_weight,
            },
            "families": fams,
            "mean": self.means(),
            "beats_length_on_every_family": all(
                self.router[f].apgr > self.length[f].apgr for f in self.families
            ),
        }
        return out

    def means(self) -> dict[str, float]:
        """Mean APGR over families: the router, length and (if run) the nested router."""
        out = {
            "router_apgr": _mean(self.router[f].apgr for f in self.families),
            "prompt_length_apgr": _mean(self.length[f].apgr for f in self.families),
        }
        if self.nested:
            out["nested_router_apgr"] = _mean(self.nested[f].apgr for f in self.families)
        return out


def _mean(values: Iterable[float]) -> float:
    return round(float(np.mean(list(values))), 4)


Stats = dict[str, dict[str, UnitStats]]
"""Per learned setting (its key), per unit: the unit's sums."""


def searched(config: TrainConfig) -> tuple[Learned, ...]:
    """The learned settings a run needs: all of them, or the fixed candidate's one."""
    if config.fixed is None:
        return config.learned
    match = tuple(lc for lc in config.learned if lc.key == config.fixed.config)
    return match or config.learned[:1]


def all_stats(design: Design, config: TrainConfig) -> Stats:
    """:class:`UnitStats` of every unit for every setting :func:`searched` names."""
    return {lc.key: stats_by_unit(design, lc, config.extra_share) for lc in searched(config)}


def held_out_parts(
    design: Design,
    config: TrainConfig,
    stats: Stats,
    score_units: Sequence[str],
    exclude: Sequence[str] = (),
) -> dict[str, Components]:
    """Score parts of ``score_units``' rows, each from fits without its unit, per setting."""
    out: dict[str, Components] = {}
    for learned in searched(config):
        out[learned.key] = held_out_components(
            design.x,
            design.units,
            stats[learned.key],
            learned.alpha,
            columns(design, learned),
            design.length_col,
            design.struct_cols,
            score_units,
            exclude,
        )
    return out


def _metrics(score: F64, design: Design, rows: npt.NDArray[np.bool_]) -> RouterMetrics:
    return router_metrics(score[rows], design.weak[rows], design.strong[rows])


def _choose(
    config: TrainConfig,
    parts: dict[str, Components],
    design: Design,
    names: Sequence[str],
) -> tuple[Candidate, int]:
    if config.fixed is not None:
        return config.fixed, 1
    results = grid(
        parts, design.units, design.weak, design.strong, names,
        config.lambdas, config.structure_weights,
    )  # fmt: skip
    base = {u: router_metrics(design.x[design.units == u, design.length_col],
                              design.weak[design.units == u],
                              design.strong[design.units == u]).apgr for u in names}  # fmt: skip
    return pick(results, base), len(results)


def _score(parts: dict[str, Components], c: Candidate) -> F64:
    comp = parts.get(c.config) or next(iter(parts.values()))
    return comp.combine(c.lam, c.structure_weight)


def validate(design: Design, config: TrainConfig) -> Validation:
    """Leave-one-family-out choice and numbers over the design's (shared) families."""
    names = [u for u in design.names() if not is_extra(u)]
    if len(names) < 2:
        raise ValueError("leave-one-family-out needs at least two families")
    stats = all_stats(design, config)
    parts = held_out_parts(design, config, stats, names)
    chosen, count = _choose(config, parts, design, names)
    score = _score(parts, chosen)
    rows = {u: design.units == u for u in names}
    nested: dict[str, RouterMetrics] = {}
    choices: dict[str, Candidate] = {}
    nested_score = np.full(len(score), np.nan)
    if config.nested and config.fixed is None and len(names) > 2:  # inner runs need two
        for f in names:
            inner = [u for u in names if u != f]
            inner_parts = held_out_parts(design, config, stats, inner, exclude=[f])
            c, _ = _choose(config, inner_parts, design, inner)
            choices[f] = c
            nested_score[rows[f]] = _score(parts, c)[rows[f]]
            nested[f] = _metrics(nested_score, design, rows[f])
    return Validation(
        chosen=chosen,
        families=names,
        rows={u: int(r.sum()) for u, r in rows.items()},
        router={u: _metrics(score, design, r) for u, r in rows.items()},
        length={u: _metrics(design.x[:, design.length_col], design, r) for u, r in rows.items()},
        nested=nested,
        nested_choices=choices,
        candidates=count,
        scores=score,
        nested_scores=nested_score if nested else None,
    )


def gain_intervals(
    design: Design, validation: Validation, resamples: int = 1000, level: float = 0.95
) -> dict[str, dict[str, DeltaInterval]]:
    """Per family: the held-out router's (and the nested router's) APGR minus prompt length's,
    with a paired bootstrap interval over the family's prompts (:func:`apgr_delta_interval`).

    An interval that straddles 0 means the family's rows cannot tell the two routers apart.
    """
    if validation.scores is None:
        raise ValueError("this validation kept no held-out scores")
    length = design.x[:, design.length_col]
    out: dict[str, dict[str, DeltaInterval]] = {}
    for f in validation.families:
        rows = design.units == f
        args = (length[rows], design.weak[rows], design.strong[rows], resamples, level)
        entry = {"router": apgr_delta_interval(validation.scores[rows], *args)}
        if validation.nested_scores is not None and f in validation.nested:
            entry["nested_router"] = apgr_delta_interval(validation.nested_scores[rows], *args)
        out[f] = entry
    return out


def select_on_extra(design: Design, config: TrainConfig, seed: int = 0) -> tuple[Candidate, float]:
    """The candidate whose out-of-fold APGR on the deployment's rows is highest (ties: smaller
    weights); every fold's head also trains on all shared rows. Returns it and that APGR."""
    extra = np.flatnonzero(design.units == EXTRA_UNIT)
    k = max(2, min(config.extra_folds, len(extra)))
    fold = np.empty(len(extra), dtype=np.int64)
    fold[np.random.default_rng(seed).permutation(len(extra))] = np.arange(len(extra)) % k
    units = design.units.astype(object)
    units[extra] = [f"{EXTRA_UNIT}/{i}" for i in fold]
    folded = Design(design.x, design.weak, design.strong, design.difficulty,
                    units.astype(np.str_), design.embedding_dim, design.default_pair)  # fmt: skip
    folds = [f"{EXTRA_UNIT}/{i}" for i in range(k)]
    parts = held_out_parts(folded, config, all_stats(folded, config), folds)
    if config.fixed is not None:
        c = config.fixed
        return c, router_metrics(
            _score(parts, c)[extra], design.weak[extra], design.strong[extra]
        ).apgr
    results = grid(parts, design.units, design.weak, design.strong, [EXTRA_UNIT],
                   config.extra_lambdas, config.structure_weights)  # fmt: skip
    best = max(
        results, key=lambda c: (round(results[c][EXTRA_UNIT], 4), -(c.lam + c.structure_weight))
    )
    return best, results[best][EXTRA_UNIT]


SCORE_ANCHORS: tuple[tuple[float, float], tuple[float, float]] = ((0.5, 0.15), (0.8, 0.30))
"""(quantile of the training prompts, score): the median prompt scores 0.15 and the 80th
percentile 0.30, so ``min_score: 0.3`` (the default policy) sends the hardest fifth of
training-like traffic to the strong tier. Quantiles weight every family equally."""


def weighted_quantile(values: F64, weights: F64, q: float) -> float:
    """The ``q`` quantile of ``values`` under ``weights``."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][min(int(np.searchsorted(cum, q * cum[-1])), len(cum) - 1)])


def anchor_scale(raw: F64, weights: F64) -> tuple[float, float]:
    """``(a, b)`` of ``score = sigmoid(a * raw + b)`` that meets :data:`SCORE_ANCHORS`."""
    (q0, s0), (q1, s1) = SCORE_ANCHORS
    r0, r1 = weighted_quantile(raw, weights, q0), weighted_quantile(raw, weights, q1)

    def logit(p: float) -> float:
        return float(np.log(p / (1 - p)))

    a = (logit(s1) - logit(s0)) / (r1 - r0) if r1 > r0 else 1.0
    return a, logit(s0) - a * r0


def final_head(design: Design, config: TrainConfig, chosen: Candidate) -> tuple[LinearHead, float]:
    """Fit the chosen head on every row, scaled by :func:`anchor_scale`. Also returns the slope
    a Platt scaling to "strong beats weak" on the default pair's rows would have had (per
    standard deviation of the score): how much probability the ranking carries."""
    learned = next((lc for lc in config.learned if lc.key == chosen.config), config.learned[0])
    stats = stats_by_unit(design, learned, config.extra_share)
    d = fit_direction(list(stats.values()), learned.alpha, columns(design, learned))
    weights = chosen.lam * d.learned if chosen.lam else np.zeros_like(d.learned)
    weights[design.length_col] += 1.0
    for col in design.struct_cols:
        weights[col] += chosen.structure_weight
    raw = ((design.x - d.mean) / d.scale) @ weights
    _, family_weight = target_and_weight(design, learned, config.extra_share)
    a, b = anchor_scale(raw, family_weight)
    rows = design.default_pair if design.default_pair.any() else np.ones(len(raw), bool)
    label = (design.strong[rows] - design.weak[rows] > 0).astype(np.float64)
    platt_a, _ = fit_platt(raw[rows], label)
    head = LinearHead(
        mean=d.mean, scale=d.scale, weights=weights, bias=0.0, platt_a=a, platt_b=b,
        feature_names=FEATURE_NAMES, embedding_dim=design.embedding_dim,
    )  # fmt: skip
    return head, platt_a * float(raw.std())
