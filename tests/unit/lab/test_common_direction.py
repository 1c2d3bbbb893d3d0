"""The common-direction lab candidate: the min-norm point and the every-family guarantee."""

from __future__ import annotations

import numpy as np
import pytest

from router.lab.common_direction import common_direction, family_effects, min_norm_point


def test_min_norm_point_of_known_hulls() -> None:
    assert min_norm_point(np.asarray([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx([0.5, 0.5])
    # The origin lies inside: the nearest point is the origin itself.
    assert min_norm_point(np.asarray([[1.0, 0.0], [-1.0, 1.0], [-1.0, -1.0]])) == pytest.approx(
        [0.0, 0.0], abs=1e-6
    )
    # One vertex is nearest.
    assert min_norm_point(np.asarray([[1.0, 0.0], [3.0, 2.0]])) == pytest.approx([1.0, 0.0])


def test_direction_helps_every_training_family_or_is_zero() -> None:
    rng = np.random.default_rng(0)
    effects = [rng.normal(size=5) + np.asarray([1.0, 0, 0, 0, 0]) for _ in range(6)]
    covs = [np.eye(5)] * 6
    for ridge in (0.1, float("inf")):
        w = common_direction(effects, covs, ridge)
        assert all(float(w @ b) > 0 for b in effects)
    opposed = [np.asarray([1.0, 0.0]), np.asarray([-1.0, 0.0])]
    assert common_direction(opposed, [np.eye(2)] * 2, 0.1) == pytest.approx([0.0, 0.0], abs=1e-6)


def test_family_effects_ignore_length() -> None:
    rng = np.random.default_rng(1)
    length = rng.normal(size=400)
    other = rng.normal(size=400)
    b, cov = family_effects(np.stack([length, other], axis=1), length + other, length)
    assert abs(b[0]) < 1e-9 and b[1] > 0.5
    assert cov.shape == (2, 2) and cov[0, 0] == pytest.approx(0.0, abs=1e-9)
