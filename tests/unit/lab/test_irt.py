"""Item-response lab target: the fit recovers a known model; two-model files keep the raw gain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from router.classify.corpus import load_corpus
from router.classify.dataset import DEFAULT_STRONG, DEFAULT_WEAK
from router.classify.design import Design
from router.classify.features import FEATURE_NAMES
from router.lab.irt import fit_items, residual_gains, smoothed_gains, target_design


def _simulate(seed: int, n: int = 400, m: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ability = np.linspace(-1.5, 1.5, m)
    difficulty = rng.normal(0, 1.2, n)
    a = np.exp(rng.normal(0, 0.3, n))
    p = 1 / (1 + np.exp(-a[:, None] * (ability[None, :] - difficulty[:, None])))
    return (rng.random((n, m)) < p).astype(np.float64), ability, difficulty


def test_the_fit_recovers_abilities_and_difficulties() -> None:
    outcomes, ability, difficulty = _simulate(0)
    fit = fit_items(outcomes, np.ones_like(outcomes))
    assert np.array_equal(np.argsort(fit.ability), np.argsort(ability))
    # 8 models per prompt pin a difficulty down only roughly (0.82 here).
    assert np.corrcoef(fit.difficulty, difficulty)[0, 1] > 0.75
    assert (fit.discrimination > 0).all()


def test_unobserved_cells_do_not_move_the_fit() -> None:
    outcomes, _, _ = _simulate(1, n=200, m=6)
    observed = np.ones_like(outcomes)
    observed[:, 5] = 0.0
    flipped = outcomes.copy()
    flipped[:, 5] = 1 - flipped[:, 5]
    a = fit_items(outcomes, observed, steps=300)
    b = fit_items(flipped, observed, steps=300)
    assert np.allclose(a.difficulty, b.difficulty) and np.allclose(a.ability[:5], b.ability[:5])


def _write(path: Path, models: list[str], rows: list[list[float]]) -> None:
    with path.open("w") as f:
        for i, scores in enumerate(rows):
            record = {"id": str(i), "prompt": f"question {i}", "scale": "binary",
                      "scores": dict(zip(models, scores, strict=True))}  # fmt: skip
            f.write(json.dumps(record) + "\n")


def test_files_of_two_models_keep_the_raw_gain(tmp_path: Path) -> None:
    pair = [DEFAULT_WEAK, DEFAULT_STRONG]
    _write(tmp_path / "two.jsonl", pair, [[0, 1], [1, 1], [1, 0]])
    many = [*pair, "m3", "m4"]
    rng = np.random.default_rng(2)
    _write(tmp_path / "many.jsonl", many, rng.integers(0, 2, (60, 4)).tolist())
    corpus = load_corpus([tmp_path])
    smoothed = smoothed_gains(corpus)
    two = np.asarray([p.stem == "two" for p in corpus.paths])[corpus.file_index]
    assert np.isnan(smoothed[two]).all()
    assert np.isfinite(smoothed[~two]).all() and (np.abs(smoothed[~two]) <= 1).all()
    n = len(corpus)
    design = Design(
        x=np.zeros((n, len(FEATURE_NAMES))), weak=corpus.outcomes.weak,
        strong=corpus.outcomes.strong, difficulty=corpus.difficulty, units=corpus.families,
        embedding_dim=0,
    )  # fmt: skip
    fitted = target_design(design, smoothed, 1.0)
    raw = design.strong - design.weak
    assert np.array_equal(fitted.strong[two], raw[two]) and not fitted.weak.any()
    assert np.allclose(fitted.strong[~two], smoothed[~two])
    half = target_design(design, smoothed, 0.5)
    assert np.allclose(half.strong[~two], 0.5 * raw[~two] + 0.5 * smoothed[~two])


def test_the_residual_target_is_uncorrelated_with_length_in_each_family() -> None:
    rng = np.random.default_rng(3)
    n = 120
    feats = rng.normal(size=(n, len(FEATURE_NAMES)))
    units = np.asarray(["a", "b"] * (n // 2), dtype=np.str_)
    design = Design(
        x=feats, weak=rng.integers(0, 2, n).astype(np.float64),
        strong=rng.integers(0, 2, n).astype(np.float64), difficulty=np.full(n, np.nan),
        units=units, embedding_dim=0,
    )  # fmt: skip
    resid = residual_gains(design)
    for u in ("a", "b"):
        rows = units == u
        assert abs(np.corrcoef(resid[rows], feats[rows, design.length_col])[0, 1]) < 1e-9
        gain = design.strong[rows] - design.weak[rows]
        assert np.corrcoef(resid[rows], gain)[0, 1] > 0.5
