"""The pair generator and the eval arithmetic (no model, no I/O beyond tmp files)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from router.cli.cache import Pair, rates, read_pairs
from router.lab.pairs import generate, write_pairs

DATA = Path(__file__).parents[2] / "data" / "cache_pairs.jsonl"


def test_generated_set_is_large_balanced_and_deterministic() -> None:
    rows = list(generate())
    assert len(rows) >= 500 and rows == list(generate())
    kinds = Counter(str(r["kind"]) for r in rows if not r["same"])
    assert set(kinds) == {"numbers", "entities", "units", "code", "negation"}
    assert sum(1 for r in rows if r["same"]) == 300
    assert len({(r["a"], r["b"]) for r in rows}) == len(rows)


def test_checked_in_file_matches_generator(tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    write_pairs(out)
    assert out.read_bytes() == DATA.read_bytes()
    assert len(read_pairs(DATA)) >= 500


def test_rates() -> None:
    pairs = [
        Pair("a", "b", True, "paraphrase"),
        Pair("c", "d", True, "paraphrase"),
        Pair("e", "f", False, "numbers"),
        Pair("g", "h", False, "code"),
    ]
    sims = np.array([0.95, 0.80, 0.97, 0.50], np.float32)
    r = rates(pairs, sims, [False, False, True, False], 0.9)
    assert r.hit_rate == 0.5 and r.false_hit_rate == 0.0
    assert r.false_hit_rate_no_guard == 0.5
    assert r.false_hits_by_kind == {"code": 0.0, "numbers": 0.0}


LONG_DATA = Path(__file__).parents[2] / "data" / "cache_pairs_long.jsonl"
SEEDS = [
    f"Question {i}: A baker in Lyon sells {i + 3} loaves every morning and buys flour from a "
    "mill. Which of these is the largest cost for the bakery? Do not include rent. Explain "
    "your answer and find the total for the week, step by step, for each of the seven days."
    for i in range(12)
]


def test_long_generator_is_deterministic_and_labels_every_row() -> None:
    from router.lab.pairs_long import generate_long

    rows = list(generate_long(SEEDS, n_true=5, n_false=5, seed=3))
    assert rows == list(generate_long(SEEDS, n_true=5, n_false=5, seed=3))
    assert sum(1 for r in rows if r["same"]) == 5 and sum(1 for r in rows if not r["same"]) >= 1
    kinds = {str(r["kind"]) for r in rows if not r["same"]}
    assert kinds <= {"numbers", "entities", "negation", "polarity", "topic"}
    assert all(r["a"] != r["b"] for r in rows)


def test_checked_in_long_sets_are_disjoint_and_labelled() -> None:
    tune = read_pairs(LONG_DATA)
    holdout = read_pairs(LONG_DATA.with_name("cache_pairs_long_holdout.jsonl"))
    assert len(tune) == len(holdout) == 400
    for pairs in (tune, holdout):
        assert sum(p.same for p in pairs) == 200
    # no seed prompt in both: a prompt's text is in one set's pairs only
    assert not {p.a for p in tune} & {p.a for p in holdout}


def _seed_text(text: str) -> str:
    """The prompt a long pair's side was made from, as far as its rewording can be undone:
    preamble and sign-off cut, case and whitespace folded, synonyms and contractions mapped back
    to one form (both sides of every true pair of the checked-in sets give the same text)."""
    import re

    from router.lab.pairs_long import _CONTRACTIONS, _PREFIXES, _SUFFIXES, _SYNONYMS

    for prefix in sorted(_PREFIXES, key=len, reverse=True):
        if prefix and text.startswith(prefix):
            text = text[len(prefix) :]
            break
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if suffix and text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    folded = " ".join(text.lower().split())
    for canonical, variant in (*_SYNONYMS, *_CONTRACTIONS):
        folded = re.sub(rf"\b{re.escape(variant)}\b", canonical, folded)
    return folded


def test_fresh_long_holdout_shares_no_prompt_with_the_other_long_sets() -> None:
    fresh = read_pairs(LONG_DATA.with_name("cache_pairs_long_holdout2.jsonl"))
    assert len(fresh) == 400 and sum(p.same for p in fresh) == 200
    assert all(_seed_text(p.a) == _seed_text(p.b) for p in fresh if p.same)
    older = {
        _seed_text(p.a)
        for name in ("cache_pairs_long.jsonl", "cache_pairs_long_holdout.jsonl")
        for p in read_pairs(LONG_DATA.with_name(name))
    }
    # side a of every pair is its seed prompt reworded (a near miss changes side b only)
    assert not {_seed_text(p.a) for p in fresh} & older


def test_rates_take_one_threshold_per_pair() -> None:
    pairs = [Pair("a", "b", True, "paraphrase"), Pair("c", "d", False, "topic")]
    sims = np.asarray([0.93, 0.93], np.float32)
    per_pair = np.asarray([0.90, 0.94], np.float32)  # a short pair and a whole-turn pair
    r = rates(pairs, sims, [False, False], per_pair)
    assert r.hit_rate == 1.0 and r.false_hit_rate == 0.0
    assert rates(pairs, sims, [False, False], 0.90).false_hit_rate == 1.0
