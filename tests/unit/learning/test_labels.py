"""Labels: stream fields round trip, gains, training rows and the quality summary."""

from __future__ import annotations

import numpy as np
import pytest

from router.learning.labels import Label, label_of_feedback, training_row
from router.learning.quality import INTERVAL_LABELS, summarize

MSGS = [{"role": "user", "content": "What is 2 + 2?"}]


def test_round_trip_and_gain() -> None:
    lab = Label("r1", "shadow", 0, 12.5, 0.25, "h", 4, MSGS, {"strong_score": "0.0", "x": "y"})
    back = Label.from_fields(lab.to_fields())
    assert back == lab
    assert back.gain == -1.0  # the weak answer won both orders
    assert Label("r2", "feedback", 1, 1.0).gain == 1.0


def test_feedback_rows_become_labels_only_with_needed_strong() -> None:
    row = {"request_id": "r", "needed_strong": "1", "score": "0.3", "feedback_ts": "5.0",
           "messages": '[{"role": "user", "content": "hi there"}]'}  # fmt: skip
    lab = label_of_feedback(row)
    assert lab is not None and (lab.label, lab.score, lab.ts, lab.prompt_tokens) == (1, 0.3, 5.0, 2)
    assert label_of_feedback({"request_id": "r", "thumbs": "up"}) is None


def test_training_rows_need_a_prompt() -> None:
    split = Label("r1", "shadow", 0, 1.0, None, "", None, MSGS, {"strong_score": "0.5"})
    row = training_row(split, "weak", "strong")
    assert row is not None and row["scores"] == {"weak": 0.5, "strong": 0.5}
    won = Label("r2", "shadow", 1, 1.0, None, "", None, MSGS, {"strong_score": "1.0"})
    assert training_row(won, "w", "s")["scores"] == {"w": 0.0, "s": 1.0}  # type: ignore[index]
    assert training_row(Label("r3", "shadow", 1, 1.0), "w", "s") is None


def test_quality_summary_without_enough_scores_has_counts_only() -> None:
    q = summarize([Label("r1", "feedback", 1, 1.0)])
    assert (q["labels"], q["feedback"], q["strong_better"]) == (1, 1, 1)
    assert "head_apgr" not in q


def _scored(gains: list[int], score_of_gain: bool) -> list[Label]:
    rng = np.random.default_rng(0)
    return [
        Label(f"r{i}", "shadow", g, float(i), float(g + rng.random()) if score_of_gain
              else float(rng.random()), "head-a", int(rng.integers(1, 500)))
        for i, g in enumerate(gains)
    ]  # fmt: skip


def test_quality_gives_the_heads_lead_over_length_with_an_interval() -> None:
    gains = [1, 0, 1, -1] * 300
    q = summarize(_scored(gains, score_of_gain=True))
    lead = q["head_minus_length"]
    assert lead["delta"] == pytest.approx(q["head_apgr"] - q["length_apgr"], abs=2e-4)
    assert 0 < lead["low"] <= lead["delta"] <= lead["high"] and lead["labels"] == 1200
    assert summarize(_scored(gains, score_of_gain=True))["head_minus_length"] == lead  # seeded


def test_quality_interval_uses_the_newest_labels_and_none_without_a_clear_gain() -> None:
    many = summarize(_scored([1, 0] * (INTERVAL_LABELS // 2 + 50), score_of_gain=True))
    assert many["head_minus_length"]["labels"] == INTERVAL_LABELS
    balanced = summarize(_scored([1, -1, 0] * 400, score_of_gain=False))
    assert "head_minus_length" not in balanced  # strong no better on average: APGR undefined
    assert "head_apgr" in balanced
