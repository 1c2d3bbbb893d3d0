"""Thresholds from a target strong share: rolling window and offline calibration."""

from __future__ import annotations

import numpy as np
import pytest

from router.route.calibrate import calibrate
from router.route.share import LocalScoreWindow, quantile_threshold, share_thresholds


def test_quantile_threshold_sends_the_target_share() -> None:
    scores = np.linspace(0, 1, 1001)
    t = quantile_threshold(scores, 0.3)
    assert (scores >= t).mean() == pytest.approx(0.3, abs=0.002)
    with pytest.raises(ValueError):
        quantile_threshold(scores, 1.5)
    with pytest.raises(ValueError):
        quantile_threshold([], 0.3)


def test_calibrate_reports_achieved_share() -> None:
    rng = np.random.default_rng(0)
    scores = rng.beta(2, 5, size=5000)
    c = calibrate(list(scores), 0.25)
    assert c.achieved_strong_share == pytest.approx(0.25, abs=0.01)
    assert c.quantiles["p10"] < c.quantiles["p90"]
    assert c.as_dict()["prompts"] == 5000


def test_share_thresholds_scale_intermediate_tiers() -> None:
    assert share_thresholds((0.0, 0.4, 0.8), 0.6) == pytest.approx((0.0, 0.3, 0.6))
    assert share_thresholds((0.0,), 0.6) == (0.0,)


async def test_window_warms_up_then_tracks_recent_scores() -> None:
    w = LocalScoreWindow(size=200, min_samples=50, refresh_every=10)
    for _ in range(49):
        await w.observe(0.1)
    assert await w.threshold(0.3) is None
    for s in np.linspace(0, 1, 200):
        await w.observe(float(s))
    t = await w.threshold(0.3)
    assert t is not None and t == pytest.approx(0.7, abs=0.02)
    for _ in range(200):  # the window forgets: all recent scores are high now
        await w.observe(0.9)
    assert await w.threshold(0.3) == pytest.approx(0.9)
    assert len(w) == 200


def test_window_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        LocalScoreWindow(size=0)
