"""Invariance-filter lab candidate: partial effects, sign agreement, no peeking at the family."""

from __future__ import annotations

import numpy as np

from router.classify.design import Design
from router.classify.features import FEATURE_NAMES
from router.lab.invariant import agreeing_weights, columns, nested, partial_effects, score


def test_partial_effects_ignore_what_length_explains() -> None:
    rng = np.random.default_rng(0)
    length = rng.normal(size=500)
    other = rng.normal(size=500)
    gain = length + other
    cols = np.stack([length, other, -other, rng.normal(size=500)], axis=1)
    eff = partial_effects(cols, gain, length)
    assert abs(eff[0]) < 1e-9  # length itself adds nothing
    assert eff[1] > 0.99 and eff[2] < -0.99
    assert abs(eff[3]) < 0.15


def test_only_columns_that_agree_get_weight() -> None:
    effects = np.asarray([[0.1, -0.2, 0.1], [0.2, -0.1, -0.1], [0.3, -0.3, 0.2]])
    assert np.allclose(agreeing_weights(effects, 0), [0.2, -0.2, 0.0])
    assert np.allclose(agreeing_weights(effects, 1), [0.2, -0.2, 0.2 / 3])


def _design(seed: int) -> Design:
    rng = np.random.default_rng(seed)
    n, dim = 160, 8
    units = np.asarray(["a", "b", "c", "d"] * (n // 4), dtype=np.str_)
    return Design(
        x=np.hstack([rng.normal(size=(n, dim)), rng.normal(size=(n, len(FEATURE_NAMES)))]),
        weak=rng.integers(0, 2, n).astype(np.float64),
        strong=rng.integers(0, 2, n).astype(np.float64),
        difficulty=np.full(n, np.nan),
        units=units,
        embedding_dim=dim,
    )


def test_a_family_is_scored_and_its_setting_chosen_without_its_labels() -> None:
    design = _design(1)
    a = design.units == "a"
    flipped = Design(
        design.x, design.weak, np.where(a, 1 - design.strong, design.strong),
        design.difficulty, design.units, design.embedding_dim,
    )  # fmt: skip
    before = score(design, columns(design, 3, ["a"]), ["b", "c", "d"], "a", 0, 0.5)
    after = score(flipped, columns(flipped, 3, ["a"]), ["b", "c", "d"], "a", 0, 0.5)
    assert np.array_equal(before, after) and before[a].any() and not before[~a].any()
    chosen = nested(design, [2, 3], [0, 1], [0.1, 1.0])
    again = nested(flipped, [2, 3], [0, 1], [0.1, 1.0])
    assert chosen["a"][0] == again["a"][0]


def test_other_magnitudes_keep_the_same_columns() -> None:
    effects = np.asarray([[0.1, -0.2, 0.1], [0.2, -0.1, -0.1], [0.3, -0.3, 0.2]])
    assert np.allclose(agreeing_weights(effects, 0, "min"), [0.1, -0.1, 0.0])
    assert np.allclose(agreeing_weights(effects, 1, "min"), [0.2, -0.2, 0.1])
    assert np.array_equal(agreeing_weights(effects, 0, "equal"), [1.0, -1.0, 0.0])
