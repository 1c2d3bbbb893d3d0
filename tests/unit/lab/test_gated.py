"""Type-gated lab head: candidates, and that a family's weights never see its own labels."""

from __future__ import annotations

import numpy as np

from router.classify.design import Design
from router.classify.features import FEATURE_NAMES
from router.lab.gated import GATES, LENGTH, Lab, candidates, choose, evaluate_gate


def _lab(strong_of_c: np.ndarray | None = None) -> Lab:
    rng = np.random.default_rng(0)
    n = 240
    dim = 6
    units = np.asarray(["a", "b", "c", "d"] * (n // 4), dtype=np.str_)
    types = np.asarray(["choice", "choice", "open", "open"] * (n // 4), dtype=np.str_)
    x = np.hstack([rng.normal(size=(n, dim)), rng.normal(size=(n, len(FEATURE_NAMES)))])
    x[:, dim + FEATURE_NAMES.index("log_tokens")] = rng.uniform(1, 6, n)
    weak = rng.integers(0, 2, n).astype(np.float64)
    strong = rng.integers(0, 2, n).astype(np.float64)
    if strong_of_c is not None:
        strong[units == "c"] = strong_of_c
    design = Design(x, weak, strong, np.full(n, np.nan), units, dim)
    spread = rng.uniform(0, 1, n)
    stem = np.where(types == "choice", rng.uniform(0.2, 0.9, n), 1.0)
    return Lab(design, types, spread, stem, ("learned", "questions", "stem"))


def test_prior_candidates_start_with_length_and_add_only_positive_weights() -> None:
    got = candidates(["questions", "math", "ridge features"], ("learned", "questions"))
    assert got[0] == LENGTH
    assert {c.component for c in got} == {"-", "questions", "ridge features"}
    assert all(c.weight >= 0 and c.base == 1.0 for c in got)
    wide = candidates(["questions"])
    assert any(c.weight < 0 for c in wide) and any(c.base == -1.0 for c in wide)


def test_all_zero_weights_score_exactly_like_length() -> None:
    lab = _lab()
    gate = GATES["four types"]
    s = lab.score({}, gate, ["a", "b", "d"], "c")
    assert lab.apgr_rows(s, "c") == lab.base["c"]


def test_a_familys_weights_are_chosen_without_its_labels() -> None:
    gate = GATES["four types"]
    lab = _lab()
    flipped = _lab(strong_of_c=1.0 - lab.d.strong[lab.d.units == "c"])
    picks = evaluate_gate(lab, gate, lab.names).picks_without["c"]
    picks_flipped = evaluate_gate(flipped, gate, flipped.names).picks_without["c"]
    assert picks == picks_flipped
    # a group no training family has keeps length
    direct = choose(lab, gate, lab.names)
    assert direct["code"] == LENGTH and direct["math"] == LENGTH
