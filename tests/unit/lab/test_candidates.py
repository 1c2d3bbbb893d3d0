"""The label-reading reference rows of the candidates table."""

from __future__ import annotations

import numpy as np
import pytest

from router.classify.design import Design
from router.classify.features import FEATURE_NAMES
from router.lab.candidates import reference_rows


def _design(miss_sign: dict[str, float], n: int = 400) -> tuple[Design, np.ndarray]:
    """Two families; length carries half the gain, the miss rate tracks the other half with
    ``miss_sign[family]`` (−1: the other models miss most where this pair gains least)."""
    rng = np.random.default_rng(0)
    rows = []
    units, weak, strong, miss = [], [], [], []
    for family, sign in miss_sign.items():
        length = rng.normal(size=n)
        other = rng.normal(size=n)
        gain = length + other
        x = np.zeros((n, 2 + len(FEATURE_NAMES)))
        x[:, 2 + FEATURE_NAMES.index("log_tokens")] = length
        rows.append(x)
        units += [family] * n
        strong.append((gain > 0).astype(float))
        weak.append(np.zeros(n))
        miss.append(sign * other)
    design = Design(
        x=np.concatenate(rows),
        weak=np.concatenate(weak),
        strong=np.concatenate(strong),
        difficulty=np.concatenate(miss),
        units=np.asarray(units),
        embedding_dim=2,
    )
    return design, design.difficulty


def test_length_plus_miss_rate_helps_where_it_agrees_and_hurts_where_it_does_not() -> None:
    design, miss = _design({"agrees": 1.0, "opposes": -1.0})
    rows = dict(reference_rows(design, miss, [0.0, 1.0]))
    at_zero, at_one = rows["ref: length + 0 · miss rate"], rows["ref: length + 1 · miss rate"]
    assert at_one["agrees"] > at_zero["agrees"] + 0.05
    assert at_one["opposes"] < at_zero["opposes"] - 0.05
    # Each family's own best weight: the agreeing one's gain, length where the rate opposes.
    best = rows["ref: length + miss rate, own best λ"]
    assert best == pytest.approx({"agrees": at_one["agrees"], "opposes": at_zero["opposes"]})
    assert rows["ref: true gain (oracle)"]["agrees"] >= best["agrees"]


def test_without_other_models_only_the_oracle_row() -> None:
    design, _ = _design({"only": 1.0})
    rows = reference_rows(design, np.full(len(design.units), np.nan), [1.0])
    assert [label for label, _ in rows] == ["ref: true gain (oracle)"]
