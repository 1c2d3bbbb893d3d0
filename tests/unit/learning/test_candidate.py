"""The candidate fit and the promotion guard on synthetic heads (no encoder)."""

from __future__ import annotations

import numpy as np
import pytest

from router.classify.features import FEATURE_NAMES
from router.classify.head import LinearHead
from router.learning.candidate import (
    CandidateConfig,
    Rows,
    fit_candidate,
    guard,
    label_apgr,
    train_and_decide,
)

DIM = 6
NF = len(FEATURE_NAMES)


def _head(weights: np.ndarray) -> LinearHead:
    return LinearHead(
        mean=np.zeros(DIM + NF),
        scale=np.ones(DIM + NF),
        weights=weights,
        bias=0.0,
        platt_a=1.0,
        platt_b=0.0,
        feature_names=FEATURE_NAMES,
        embedding_dim=DIM,
    )


def _rows(true_w: np.ndarray, n: int = 300, seed: int = 0) -> Rows:
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, DIM)).astype(np.float32)
    feats = rng.normal(size=(n, NF)).astype(np.float32)
    x = np.hstack([emb, feats]).astype(np.float64)
    gain = (x @ true_w + 0.3 * rng.normal(size=n) > 0).astype(np.float64)  # needed or not
    tokens = rng.integers(1, 500, size=n)
    return Rows(emb, feats, tokens, gain)


def _true_w() -> np.ndarray:
    w = np.zeros(DIM + NF)
    w[:3] = (1.0, -0.5, 0.8)
    return w


def test_label_apgr_orders() -> None:
    gain = np.array([1.0, 0.0, -1.0, 1.0])
    assert label_apgr([4, 2, 1, 3], gain) > label_apgr([1, 2, 4, 3], gain)
    assert label_apgr([1, 1, 1, 1], gain) == 0.5
    assert label_apgr([1, 2, 3, 4], np.array([-1.0, -1.0, 0.0, 0.0])) == 0.5  # no strong gain


def test_guard_refuses_a_candidate_that_does_not_beat_a_good_head() -> None:
    w = _true_w()
    rows = _rows(w)
    verdict, head = train_and_decide(_head(w), rows, CandidateConfig(alpha=100.0))
    assert not verdict.promoted and head is None
    assert verdict.current_apgr > verdict.length_apgr
    assert "current" in verdict.reason
    assert verdict.lead is not None and verdict.lead.low < 0.01  # no sure lead of min_gain


def test_guard_promotes_a_candidate_that_fixes_a_wrong_head() -> None:
    w = _true_w()
    rows = _rows(w)
    wrong = _head(-w)
    verdict, head = train_and_decide(wrong, rows, CandidateConfig(alpha=100.0))
    assert verdict.promoted and head is not None
    assert verdict.candidate_apgr > verdict.current_apgr + 0.2
    lead = verdict.lead
    assert lead is not None and lead.low > 0.1  # sure of it: the whole interval is a lead
    assert lead.delta == pytest.approx(verdict.candidate_apgr - verdict.current_apgr)
    assert verdict.as_dict()["candidate_minus_current"] == lead.as_dict()
    fresh = _rows(w, seed=1)
    new = label_apgr(head.raw(fresh.embeddings, fresh.features), fresh.target)
    old = label_apgr(wrong.raw(fresh.embeddings, fresh.features), fresh.target)
    assert new > old + 0.2


def test_guard_refuses_a_candidate_below_length() -> None:
    rng = np.random.default_rng(3)
    rows = _rows(_true_w())
    tokens = np.where(rows.target > 0, 1000, 1) + rng.integers(0, 5, size=len(rows))
    by_length = Rows(rows.embeddings, rows.features, tokens, rows.target)
    verdict = guard(_head(-_true_w()), by_length, CandidateConfig(alpha=100.0, min_gain=0.0))
    assert not verdict.promoted and "length" in verdict.reason


def test_candidate_is_one_linear_head_over_the_same_inputs() -> None:
    w = _true_w()
    current = _head(w)
    rows = _rows(w)
    cand = fit_candidate(current, rows, CandidateConfig())
    assert cand.weights.shape == current.weights.shape
    assert cand.feature_names == current.feature_names
    p = cand.predict(rows.embeddings, rows.features)
    assert ((p >= 0) & (p <= 1)).all()


def test_shipped_rows_join_the_fit() -> None:
    w = _true_w()
    rows = _rows(w, n=60)
    base = _rows(w, n=600, seed=5)
    cand = fit_candidate(_head(np.zeros_like(w)), rows, CandidateConfig(alpha=10.0), base)
    fresh = _rows(w, seed=9)
    assert label_apgr(cand.raw(fresh.embeddings, fresh.features), fresh.target) > 0.7


def _noisy(seed: int, n: int = 80) -> tuple[LinearHead, Rows]:
    """A clueless serving head and a few noisy labels with a weak true signal."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, DIM)).astype(np.float32)
    feats = rng.normal(size=(n, NF)).astype(np.float32)
    x = np.hstack([emb, feats]).astype(np.float64)
    gain = (x @ _true_w() + 3.0 * rng.normal(size=n) > 1).astype(np.float64)
    rows = Rows(emb, feats, rng.integers(1, 500, size=n), gain)
    return _head(1e-3 * rng.normal(size=DIM + NF)), rows


def test_a_sure_lead_refuses_what_a_few_noisy_labels_cannot_tell_from_none() -> None:
    head, rows = _noisy(0)
    plain = guard(head, rows, CandidateConfig(alpha=100.0))
    assert plain.promoted and plain.lead is not None and plain.lead.low < 0 < plain.lead.delta
    sure = guard(head, rows, CandidateConfig(alpha=100.0, sure_lead=True))
    assert not sure.promoted and "not sure" in sure.reason and "holds 0" in sure.reason
    assert (sure.candidate_apgr, sure.current_apgr) == (plain.candidate_apgr, plain.current_apgr)


def test_a_sure_lead_still_promotes_a_clear_winner() -> None:
    head, rows = _noisy(39)
    verdict = guard(head, rows, CandidateConfig(alpha=100.0, sure_lead=True))
    assert verdict.promoted and verdict.lead is not None and verdict.lead.low > 0
