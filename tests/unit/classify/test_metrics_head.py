"""APGR/CPT on constructed cases, and the numpy head: ridge, Platt, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from router.classify.head import LinearHead, fit_platt, fit_ridge, standardiser
from router.classify.metrics import (
    apgr,
    apgr_delta_interval,
    cpt,
    gap_is_clear,
    pgr_curve,
    router_metrics,
)


def _outcomes(n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    weak = (rng.random(n) < 0.5).astype(float)
    strong = np.maximum(weak, (rng.random(n) < 0.6).astype(float))
    return weak, strong


def test_oracle_router_beats_random_and_reverse() -> None:
    weak, strong = _outcomes()
    gain = strong - weak
    best = router_metrics(gain, weak, strong)
    worst = router_metrics(-gain, weak, strong)
    flat = router_metrics(np.zeros_like(gain), weak, strong)
    assert best.apgr > 0.8 and best.cpt50 < 0.3
    assert worst.apgr < 0.2
    assert flat.apgr == pytest.approx(0.5)
    assert flat.cpt50 == pytest.approx(0.5) and flat.cpt80 == pytest.approx(0.8)


def test_curve_ends_at_the_two_models() -> None:
    weak, strong = _outcomes(200)
    c = pgr_curve(np.arange(200), weak, strong)
    assert c.quality[0] == pytest.approx(weak.mean())
    assert c.quality[-1] == pytest.approx(strong.mean())
    assert c.pgr[0] == pytest.approx(0.0) and c.pgr[-1] == pytest.approx(1.0)
    assert 0.0 <= apgr(c) <= 1.0
    assert cpt(c, 2.0) == 1.0


def test_metrics_reject_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        pgr_curve([1.0, 2.0], [0.0], [1.0])


def test_fit_ridge_recovers_weights() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 3))
    y = x @ np.array([2.0, -1.0, 0.5]) + 3.0
    coef, bias = fit_ridge(x, y, alpha=1e-6)
    np.testing.assert_allclose(coef, [2.0, -1.0, 0.5], atol=1e-3)
    assert bias == pytest.approx(3.0, abs=1e-3)


def test_fit_platt_is_monotone_and_calibrated() -> None:
    rng = np.random.default_rng(2)
    raw = rng.normal(size=4000)
    label = (rng.random(4000) < 1 / (1 + np.exp(-(2 * raw - 1)))).astype(float)
    a, b = fit_platt(raw, label)
    assert a == pytest.approx(2.0, abs=0.3) and b == pytest.approx(-1.0, abs=0.3)


def test_head_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(20, 4)).astype(np.float32)
    feats = rng.normal(size=(20, 2)).astype(np.float32)
    mean, scale = standardiser(np.hstack([emb, feats]).astype(np.float64))
    head = LinearHead(mean, scale, rng.normal(size=6), 0.1, 1.5, -0.2, ("f1", "f2"), 4)
    head.save(tmp_path)
    loaded = LinearHead.load(tmp_path)
    np.testing.assert_allclose(loaded.predict(emb, feats), head.predict(emb, feats))
    assert loaded.feature_names == ("f1", "f2") and loaded.embedding_dim == 4
    p = head.predict(emb, feats)
    assert ((p > 0) & (p < 1)).all()
    with pytest.raises(ValueError):
        head.predict(emb[:, :3], feats)


@pytest.mark.parametrize("active", [1, 3, 40])
def test_one_prompt_scores_as_the_batch_does(active: int) -> None:
    rng = np.random.default_rng(active)
    dim, k = 48, 5
    emb = rng.normal(size=(30, dim)).astype(np.float32)
    feats = rng.normal(size=(30, k)).astype(np.float32)
    weights = np.zeros(dim + k)
    cols = rng.choice(dim + k, size=active, replace=False)
    weights[cols] = rng.normal(size=active)
    mean, scale = rng.normal(size=dim + k), rng.uniform(0.5, 2.0, size=dim + k)
    head = LinearHead(mean, scale, weights, 0.3, 1.7, -0.4, tuple("abcde"), dim)
    assert head.active == tuple(sorted(int(c) for c in cols))
    batch = head.predict(emb, feats)
    one = [head.predict_one(emb[i], feats[i]) for i in range(len(emb))]
    if active > 32:  # numpy's product, on the lone row
        assert one == [float(head.predict(emb[i : i + 1], feats[i : i + 1])[0]) for i in range(30)]
    np.testing.assert_allclose(one, batch, rtol=1e-12, atol=1e-15)
    extreme = head.predict_one(emb[0] * 1e6, feats[0] * 1e6)  # clipped, not overflowed
    assert 0.0 <= extreme <= 1.0


def test_delta_interval_is_paired_seeded_and_holds_the_difference() -> None:
    weak, strong = _outcomes(n=600)
    gain = strong - weak
    noise = np.random.default_rng(3).normal(0, 1, len(gain))
    good, flat = gain + noise, np.zeros_like(gain)
    iv = apgr_delta_interval(good, flat, weak, strong, resamples=300)
    expected = apgr(pgr_curve(good, weak, strong)) - apgr(pgr_curve(flat, weak, strong))
    assert iv.delta == pytest.approx(expected)
    assert 0 < iv.low <= iv.delta <= iv.high  # a real signal: the interval excludes 0
    assert iv == apgr_delta_interval(good, flat, weak, strong, resamples=300)  # seeded
    other = apgr_delta_interval(good, flat, weak, strong, resamples=300, seed=1)
    assert other.delta == iv.delta and (other.low, other.high) != (iv.low, iv.high)
    wide = apgr_delta_interval(good, flat, weak, strong, resamples=300, level=0.99)
    assert wide.low <= iv.low and wide.high >= iv.high
    flipped = apgr_delta_interval(flat, good, weak, strong, resamples=300)
    assert flipped.delta == pytest.approx(-iv.delta) and flipped.high < 0


def test_delta_interval_of_the_same_ordering_is_exactly_zero() -> None:
    weak, strong = _outcomes(n=200)
    x = np.random.default_rng(4).normal(size=200)
    same = apgr_delta_interval(x, x.copy(), weak, strong, resamples=50)
    assert (same.delta, same.low, same.high) == (0.0, 0.0, 0.0)
    monotone = apgr_delta_interval(x, np.exp(x), weak, strong, resamples=50)  # same order
    assert (monotone.low, monotone.high) == pytest.approx((0.0, 0.0))
    assert same.as_dict()["resamples"] == 50 and same.format() == "+0.000 [+0.000, +0.000]"


def test_delta_interval_straddles_zero_for_two_noise_routers() -> None:
    weak, strong = _outcomes(n=300)
    rng = np.random.default_rng(5)
    iv = apgr_delta_interval(rng.random(300), rng.random(300), weak, strong, resamples=300)
    assert iv.low < 0 < iv.high


@pytest.mark.parametrize(("level", "resamples"), [(0.0, 10), (1.0, 10), (0.9, 0)])
def test_delta_interval_rejects_bad_settings(level: float, resamples: int) -> None:
    weak, strong = _outcomes(n=20)
    with pytest.raises(ValueError):
        apgr_delta_interval(weak, strong, weak, strong, resamples=resamples, level=level)


def test_gap_is_clear_only_beyond_two_standard_errors() -> None:
    assert gap_is_clear([1.0, 0.0, 1.0, 0.0] * 50)
    assert not gap_is_clear([1.0, -1.0] * 50)  # mean 0
    assert not gap_is_clear([1.0, -1.0] * 50 + [1.0])  # positive, but noise
    assert not gap_is_clear([1.0]) and not gap_is_clear([])
