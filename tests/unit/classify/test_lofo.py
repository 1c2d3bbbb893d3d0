"""Pair choice per file, families, leave-one-family-out fitting and the never-worse-than-length
choice, on small synthetic data (no encoder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router.classify.corpus import (
    FILE_PAIRS,
    choose_pair,
    expand_data_paths,
    family_of,
    load_corpus,
    parse_pair_overrides,
)
from router.classify.design import Design, Learned, TrainConfig, stats_by_unit
from router.classify.features import FEATURE_NAMES
from router.classify.head import fit_ridge, standardiser
from router.classify.lofo import Candidate, fit_direction, held_out_components, pick
from router.classify.validate import SCORE_ANCHORS, anchor_scale, final_head, validate

DEFAULT = ("mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview")


def test_pair_choice_order_override_file_default_default_pair() -> None:
    models = {*DEFAULT, "a", "b"}
    assert choose_pair(Path("x.jsonl"), models, {"x": ("a", "b")}).reason == "override"
    c = choose_pair(Path("x.jsonl"), models, {})
    assert (c.weak, c.strong, c.reason) == (*DEFAULT, "default pair")
    crux = set(FILE_PAIRS["zeroeval_crux"]) | {"other"}
    c = choose_pair(Path("zeroeval_crux.jsonl"), crux, {})
    assert (c.weak, c.strong, c.reason) == (*FILE_PAIRS["zeroeval_crux"], "file default")
    with pytest.raises(ValueError, match="--pair"):
        choose_pair(Path("y.jsonl"), {"a", "b"}, {})
    with pytest.raises(ValueError, match="does not score"):
        choose_pair(Path("x.jsonl"), models, {"x": ("a", "zzz")})


def test_pair_overrides_parse_and_reject() -> None:
    assert parse_pair_overrides(["math.jsonl=w,s", "crux=a/b,c"]) == {
        "math": ("w", "s"),
        "crux": ("a/b", "c"),
    }
    for bad in ("math", "math=w", "=w,s", "math=,s"):
        with pytest.raises(ValueError):
            parse_pair_overrides([bad])


def test_families_split_routerbench_by_source() -> None:
    assert family_of("routerbench", "routerbench/mbpp") == "code-writing"
    assert family_of("routerbench", "routerbench/winogrande") == "commonsense"
    assert family_of("mmlu_mixtral_gpt4", "mmlu/astronomy") == "knowledge"
    assert family_of("my_traffic", "whatever") == "my_traffic"


def _write(path: Path, weak: str, strong: str, n: int, seed: int, extra_models: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        hard = rng.random() < 0.4
        scores = {weak: float(not hard or rng.random() < 0.2), strong: 1.0}
        scores |= {
            f"m{k}": float(rng.random() < (0.3 if hard else 0.8)) for k in range(extra_models)
        }
        rows.append(
            {"id": i, "source": path.stem, "prompt": "hard " * hard + "q", "scores": scores}
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_load_corpus_reads_a_directory_with_a_pair_per_file(tmp_path: Path) -> None:
    _write(tmp_path / "a.jsonl", *DEFAULT, 20, 0)
    _write(tmp_path / "b.jsonl", "small", "big", 30, 1, extra_models=3)
    (tmp_path / "notes.txt").write_text("not data")
    assert [p.name for p in expand_data_paths([tmp_path])] == ["a.jsonl", "b.jsonl"]
    with pytest.raises(ValueError, match=r"b\.jsonl"):
        load_corpus([tmp_path])
    corpus = load_corpus([tmp_path], {"b": ("small", "big")})
    assert len(corpus) == 50 and corpus.family_names() == ["a", "b"]
    assert [(p.weak, p.reason) for p in corpus.pairs] == [
        (DEFAULT[0], "default pair"),
        ("small", "override"),
    ]
    a = corpus.families == "a"
    assert np.isnan(corpus.difficulty[a]).all()  # two models: no pair-free difficulty
    assert not np.isnan(corpus.difficulty[~a]).any()


def _design(
    n_per: int = 300, helps: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0), seed: int = 0
) -> Design:
    """Families where length helps a little and a 'code' signal helps by ``helps[f]``."""
    rng = np.random.default_rng(seed)
    dim = 4
    xs, weak, strong, units = [], [], [], []
    k_len = dim + FEATURE_NAMES.index("log_tokens")
    k_code = dim + FEATURE_NAMES.index("code")
    for f, h in enumerate(helps):
        x = rng.normal(size=(n_per, dim + len(FEATURE_NAMES)))
        logit = 0.3 * x[:, k_len] + h * x[:, k_code] + rng.normal(size=n_per)
        need = rng.random(n_per) < 1 / (1 + np.exp(-logit))
        xs.append(x)
        weak.append(np.where(need, 0.0, 1.0))
        strong.append(np.ones(n_per))
        units += [f"fam{f}"] * n_per
    return Design(
        x=np.vstack(xs),
        weak=np.concatenate(weak),
        strong=np.concatenate(strong),
        difficulty=np.full(len(units), np.nan),
        units=np.asarray(units),
        embedding_dim=dim,
        default_pair=np.ones(len(units), bool),
    )


SMALL = TrainConfig(learned=(Learned(0.0, True, 10.0, True),), nested=True)


def test_fit_from_sums_matches_a_direct_ridge_fit() -> None:
    d = _design()
    lc = Learned(0.0, True, 10.0, False)
    stats = stats_by_unit(d, lc, 0.3)
    cols = np.arange(d.x.shape[1])
    direction = fit_direction(list(stats.values()), lc.alpha, cols)
    y = (d.strong - d.weak).copy()
    for u in d.names():  # the target is standardised within each family
        r = d.units == u
        y[r] = (y[r] - y[r].mean()) / y[r].std()
    mean, scale = standardiser(d.x)
    coef, _ = fit_ridge((d.x - mean) / scale, y, lc.alpha, np.ones(len(y)))
    cos = coef @ direction.learned / np.linalg.norm(coef) / np.linalg.norm(direction.learned)
    assert cos == pytest.approx(1.0, abs=1e-9)


def test_a_family_is_scored_only_by_heads_that_never_saw_its_labels() -> None:
    d = _design()
    lc = SMALL.learned[0]
    cols = np.arange(d.x.shape[1])

    def held_out(design: Design) -> np.ndarray:
        stats = stats_by_unit(design, lc, 0.3)
        comp = held_out_components(
            design.x, design.units, stats, lc.alpha, cols,
            design.length_col, design.struct_cols, design.names(),
        )  # fmt: skip
        out: np.ndarray = comp.learned[design.units == "fam0"]
        return out

    swap = np.where(d.units == "fam0", 1.0 - d.weak, d.weak)
    flipped = Design(d.x, swap, d.strong, d.difficulty, d.units, d.embedding_dim, d.default_pair)
    assert np.allclose(held_out(d), held_out(flipped))


def test_pick_is_maximin_over_families_then_mean_then_smaller_weights() -> None:
    base = {"a": 0.5, "b": 0.5}
    length = Candidate("-", 0.0, 0.0)
    good_mean = Candidate("x", 1.0, 0.0)  # +0.2 on a, -0.01 on b
    safe = Candidate("x", 0.5, 0.0)  # +0.01 on both
    results = {length: base, good_mean: {"a": 0.7, "b": 0.49}, safe: {"a": 0.51, "b": 0.51}}
    assert pick(results, base) == safe
    assert pick({length: base, good_mean: results[good_mean]}, base) == length


def test_a_signal_that_hurts_one_family_is_not_used_and_length_is_kept() -> None:
    """The learned signal helps three families and reverses in the fourth: the choice must not be
    worse than length on any held-out family, so it falls back to length exactly."""
    d = _design(helps=(1.5, 1.5, 1.5, -1.5))
    v = validate(d, SMALL)
    assert v.chosen.lam == 0.0 and v.chosen.structure_weight == 0.0
    for f in v.families:
        assert v.router[f].apgr >= v.length[f].apgr - 1e-12
    assert not v.as_dict()["beats_length_on_every_family"]


def test_a_signal_that_holds_everywhere_is_used_and_beats_length_on_every_family() -> None:
    d = _design(helps=(1.5, 1.0, 2.0, 1.2))
    v = validate(d, SMALL)
    assert v.chosen.lam > 0.0
    assert all(v.router[f].apgr > v.length[f].apgr for f in v.families)
    assert set(v.nested) == set(v.families)  # nested: the choice redone without each family
    out = v.as_dict()
    assert out["beats_length_on_every_family"] is True
    assert out["mean"]["router_apgr"] > out["mean"]["prompt_length_apgr"]  # type: ignore[index]
    head, _ = final_head(d, SMALL, v.chosen)
    code = d.embedding_dim + FEATURE_NAMES.index("code")
    assert head.weights[code] > 0  # the final head learned the signal


def test_score_scale_maps_the_weighted_quantiles_to_the_anchors() -> None:
    raw = np.concatenate([np.linspace(0, 1, 100), np.linspace(10, 20, 10)])
    weight = np.concatenate([np.full(100, 0.1), np.full(10, 1.0)])  # two families, equal weight
    a, b = anchor_scale(raw, weight)
    assert a > 0
    score = 1 / (1 + np.exp(-(a * raw + b)))
    (q0, s0), (q1, s1) = SCORE_ANCHORS
    order = np.argsort(score)
    cum = np.cumsum(weight[order]) / weight.sum()
    assert score[order][np.searchsorted(cum, q0)] == pytest.approx(s0, abs=1e-9)
    assert score[order][np.searchsorted(cum, q1)] == pytest.approx(s1, abs=1e-9)
    assert anchor_scale(np.ones(5), np.ones(5))[0] == 1.0  # a constant score keeps a slope
