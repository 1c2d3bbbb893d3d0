"""PSI over the rolling window, the alert line, and the shipped reference histogram."""

from __future__ import annotations

import math
import random

import pytest
from structlog.testing import capture_logs

from router.observability.drift import DriftMonitor, Reference, psi
from router.observability.reference import build_reference
from router.policy.sections.observability import DriftSettings

HALVES = Reference(edges=(0.0, 0.5, 1.0), proportions=(0.5, 0.5), source="minilm")


def test_psi_is_zero_for_the_same_distribution_and_grows_with_shift() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    small, large = psi([0.5, 0.5], [0.6, 0.4]), psi([0.5, 0.5], [0.9, 0.1])
    assert 0 < small < large
    assert small == pytest.approx(0.1 * math.log(0.6 / 0.5) - 0.1 * math.log(0.4 / 0.5))
    assert math.isfinite(psi([0.5, 0.5], [1.0, 0.0]))  # empty bins are floored


def test_window_rolls_and_counts_stay_consistent() -> None:
    m = DriftMonitor(HALVES, DriftSettings(window=10, min_samples=10))
    for _ in range(10):
        m.observe(0.9, "minilm")
    assert m.shares() == [0.0, 1.0]
    for _ in range(5):
        m.observe(0.1, "minilm")
    assert m.samples == 10 and m.shares() == [0.5, 0.5]
    assert m.current_psi() == pytest.approx(0.0)


def test_no_psi_before_min_samples() -> None:
    m = DriftMonitor(HALVES, DriftSettings(window=100, min_samples=50))
    for _ in range(49):
        m.observe(0.9, "minilm")
    assert m.current_psi() is None and m.check() is None


def test_alert_line_on_crossing_and_recovery() -> None:
    m = DriftMonitor(
        HALVES, DriftSettings(window=20, min_samples=20, check_every=10, psi_alert=0.2)
    )
    with capture_logs() as logs:
        for _ in range(20):
            m.observe(0.95, "minilm")
        for _ in range(20):
            m.observe(0.95, "minilm")  # still drifted: no second alert
    alerts = [e for e in logs if e["event"] == "classifier_drift"]
    assert len(alerts) == 1 and m.alerting and m.alerts == 1
    assert alerts[0]["log_level"] == "warning" and alerts[0]["psi"] >= 0.2
    assert alerts[0]["psi_alert"] == 0.2
    with capture_logs() as logs:
        for i in range(20):
            m.observe(0.1 if i % 2 else 0.9, "minilm")
    assert [e["event"] for e in logs] == ["classifier_drift_recovered"]
    assert not m.alerting


def test_other_classifier_sources_are_skipped() -> None:
    m = DriftMonitor(HALVES)
    m.observe(0.9, "heuristic")
    assert m.samples == 0 and m.skipped == 1


def test_new_window_size_keeps_newest_scores() -> None:
    m = DriftMonitor(HALVES, DriftSettings(window=20, min_samples=1))
    for s in [0.1] * 10 + [0.9] * 10:
        m.observe(s, "minilm")
    m.configure(DriftSettings(window=10, min_samples=1))
    assert m.samples == 10 and m.shares() == [0.0, 1.0]


def test_shipped_reference_is_a_histogram_of_the_shipped_model() -> None:
    ref = Reference.shipped()
    assert ref.source and ref.source.startswith("minilm")
    assert sum(ref.proportions) == pytest.approx(1.0, abs=1e-3)
    assert ref.edges[0] == 0.0 and ref.edges[-1] == 1.0
    assert ref.bin_of(-1.0) == 0 and ref.bin_of(2.0) == len(ref.proportions) - 1


def test_scores_drawn_like_training_give_low_psi() -> None:
    rng = random.Random(7)
    train = [rng.betavariate(2, 8) for _ in range(5000)]
    edges, shares = build_reference(train, bins=10)
    ref = Reference(tuple(edges), tuple(shares), "minilm")
    same = DriftMonitor(ref, DriftSettings(window=2000, min_samples=100))
    shifted = DriftMonitor(ref, DriftSettings(window=2000, min_samples=100))
    for _ in range(2000):
        same.observe(rng.betavariate(2, 8), "minilm")
        shifted.observe(rng.betavariate(5, 5), "minilm")
    assert (same.current_psi() or 0) < 0.05
    assert (shifted.current_psi() or 0) > 0.5


def test_reference_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        Reference(edges=(0.0, 1.0), proportions=(1.0,))
    with pytest.raises(ValueError):
        Reference(edges=(0.0, 0.7, 0.5), proportions=(0.5, 0.5))
