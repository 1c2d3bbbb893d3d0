"""The label ceiling: routers that read other models' outcomes, on synthetic multi-model files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router.lab.ceiling import label_ceiling, load_other_outcomes, main

WEAK, STRONG = "weak-m", "strong-m"


def write_rows(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def judged_rows(n: int, twin: bool, seed: int = 0) -> list[dict[str, object]]:
    """1-10 judged rows; ``twin`` adds a model whose outcome tracks the strong model's gain."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for i in range(n):
        w = float(rng.integers(1, 9))
        s = min(10.0, w + float(rng.integers(-1, 5)))  # the strong model is better on average
        scores = {WEAK: w, STRONG: s, "noise-a": float(rng.integers(1, 11))}
        if twin:
            scores["twin"] = 5.5 + (s - w) / 2
        if i % 7:  # some rows lack a model: filled with the row's mean
            scores["noise-b"] = float(rng.integers(1, 11))
        rows.append({"id": str(i), "prompt": f"p{i}", "scores": scores, "scale": "1-10"})
    return rows


def test_an_outcome_that_tracks_the_gain_reaches_the_oracle(tmp_path: Path) -> None:
    data = load_other_outcomes(
        write_rows(tmp_path / "d.jsonl", judged_rows(300, twin=True)), WEAK, STRONG
    )
    assert data.other_models == ["noise-a", "noise-b", "twin"]
    assert data.weak.min() >= 0.0 and data.strong.max() <= 1.0  # rescaled from 1-10
    c = label_ceiling(data, alpha=1.0, seeds=3)
    assert c.rows == 300 and c.other_models == 3
    assert c.oracle > 0.75
    assert c.others_ridge_min > c.oracle - 0.02


def test_unrelated_outcomes_give_about_random(tmp_path: Path) -> None:
    data = load_other_outcomes(
        write_rows(tmp_path / "d.jsonl", judged_rows(400, twin=False)), WEAK, STRONG
    )
    c = label_ceiling(data, seeds=5)
    assert abs(c.others_ridge_mean - 0.5) < 0.1
    assert abs(c.others_mean - 0.5) < 0.1
    assert c.others_ridge_min <= c.others_ridge_mean <= c.others_ridge_max


def test_a_two_model_file_is_refused(tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [{"id": "1", "prompt": "p", "scores": {WEAK: 1, STRONG: 0}}]
    with pytest.raises(ValueError, match="no model besides"):
        load_other_outcomes(write_rows(tmp_path / "d.jsonl", rows), WEAK, STRONG)
    with pytest.raises(ValueError, match="score both"):
        load_other_outcomes(write_rows(tmp_path / "e.jsonl", rows), WEAK, "absent")


def test_cli_prints_json_and_names_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_rows(tmp_path / "d.jsonl", judged_rows(60, twin=True))
    args = ["--data", str(path), "--weak-model", WEAK, "--strong-model", STRONG]
    assert main([*args, "--json", "--seeds", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == 60 and 0.0 <= out["others_ridge_mean"] <= 1.0
    with pytest.raises(SystemExit) as exc:
        main(["--data", str(tmp_path / "missing.jsonl")])
    assert exc.value.code == 2
    assert "missing.jsonl" in capsys.readouterr().err
