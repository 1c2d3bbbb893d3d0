"""kNN lab candidate: neighbour means, self-exclusion and the leave-one-family-out loop."""

from __future__ import annotations

import numpy as np

from router.classify.design import Design
from router.classify.features import FEATURE_NAMES
from router.lab.knn import knn_scores, run_lofo


def test_knn_takes_the_weighted_mean_of_the_nearest_rows() -> None:
    base = np.asarray([[1, 0], [0.8, 0.6], [0, 1], [-1, 0]], dtype=np.float32)
    target = np.asarray([1.0, 3.0, -2.0, 5.0])
    weight = np.asarray([1.0, 3.0, 1.0, 1.0])
    query = np.asarray([[1, 0], [0, 1]], dtype=np.float32)
    got = knn_scores(query, base, target, weight, k=2, chunk=1)
    assert got[0] == (1 * 1 + 3 * 3) / 4  # rows 0 and 1
    assert got[1] == (3 * 3 - 2) / 4  # rows 2 and 1


def test_a_row_is_not_its_own_neighbour() -> None:
    base = np.asarray([[1, 0], [0.9, 0.1], [0, 1]], dtype=np.float32)
    target = np.asarray([10.0, 1.0, 2.0])
    got = knn_scores(base[:1], base, target, np.ones(3), k=1, self_index=np.asarray([0]))
    assert got[0] == 1.0


def test_lofo_scores_each_family_from_the_others_only() -> None:
    rng = np.random.default_rng(0)
    n = 90
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    units = np.asarray(["a", "b", "c"] * (n // 3), dtype=np.str_)
    design = Design(
        x=np.hstack([emb, rng.normal(size=(n, len(FEATURE_NAMES)))]),
        weak=rng.integers(0, 2, n).astype(np.float64),
        strong=rng.integers(0, 2, n).astype(np.float64),
        difficulty=np.full(n, np.nan),
        units=units,
        embedding_dim=8,
    )
    learned, length_z = run_lofo(emb, design, k=5, ref_per_family=10)
    assert np.isfinite(learned).all() and np.isfinite(length_z).all()
    # Changing family a's labels leaves a's own scores unchanged (it never sees them).
    flipped = Design(
        design.x, design.weak, np.where(units == "a", 1 - design.strong, design.strong),
        design.difficulty, units, 8,
    )  # fmt: skip
    again, _ = run_lofo(emb, flipped, k=5, ref_per_family=10)
    assert np.array_equal(again[units == "a"], learned[units == "a"])
    assert not np.array_equal(again[units == "b"], learned[units == "b"])
