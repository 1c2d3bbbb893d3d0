"""Training on synthetic outcomes with a tiny encoder, and the four CLI commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from router.classify.dataset import load_outcomes
from router.classify.encoder import Encoder
from router.classify.evaluate import evaluate_scores, render_html
from router.classify.features import FEATURE_NAMES, feature_matrix
from router.classify.inputs import PromptText
from router.classify.train import TrainConfig, group_folds, train_model
from router.cli import calibrate as calibrate_cli
from router.cli import eval as eval_cli
from router.cli import score as score_cli
from router.cli import train as train_cli

WEAK, STRONG = "weak-model", "strong-model"


def _write_data(path: Path, n: int = 120) -> Path:
    """Long, code-heavy prompts need the strong model; short chat does not."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        hard = i % 3 == 0
        text = (
            "write python code : def f ( x ) : return x ; explain why step by step " * 3
            if hard
            else rng.choice(["hi", "thanks", "hello there", "what is the sum ?"])
        )
        rows.append({
            "id": f"s/{i}", "source": f"syn/{i % 6}", "prompt": str(text), "scale": "binary",
            "scores": {WEAK: 0.0 if hard else 1.0, STRONG: 1.0},
        })  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="router")
    sub = p.add_subparsers(dest="command", required=True)
    for mod in (train_cli, eval_cli, calibrate_cli, score_cli):
        mod.register(sub)
    return p


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    code: int = args.func(args)
    return code


def test_group_folds_keep_groups_whole() -> None:
    groups = [f"g{i % 7}" for i in range(70)]
    folds = group_folds(groups, 3)
    for g in set(groups):
        assert len({int(f) for f, gg in zip(folds, groups, strict=True) if gg == g}) == 1
    assert set(folds.tolist()) == {0, 1, 2}
    single = group_folds(["one"] * 10, 5)
    assert sorted(single.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_features_see_code_and_length() -> None:
    f = feature_matrix([PromptText("```\ndef f(x):\n    return x;\n```"), PromptText("hi")],
                       np.array([12, 1]))  # fmt: skip
    code = FEATURE_NAMES.index("code")
    assert f[0, code] > f[1, code] and f[0, 0] > f[1, 0]


def test_train_model_learns_the_synthetic_rule(tiny_encoder: Encoder, tmp_path: Path) -> None:
    data = _write_data(tmp_path / "syn.jsonl")
    meta = train_model([data], tmp_path / "model", tiny_encoder, WEAK, STRONG,
                       TrainConfig(alpha=1.0, folds=3), cache=tmp_path / "cache.npz")  # fmt: skip
    assert (tmp_path / "model" / "head.npz").is_file()
    on_disk = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert on_disk["data"][0]["sha256"] == meta["data"][0]["sha256"]  # type: ignore[index]
    held_out = on_disk["validation"]["metrics"]["syn.jsonl"]["router"]
    assert held_out["apgr"] > 0.8  # unseen groups, but the rule is simple
    assert (tmp_path / "cache.npz").is_file()


def test_cli_train_score_eval_calibrate(
    tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write_data(tmp_path / "syn.jsonl")
    model = tmp_path / "model"
    enc = ["--encoder-dir", str(tiny_bert_dir), "--device", "cpu"]
    assert _run(["train", "--data", str(data), "--out", str(model), "--weak-model", WEAK,
                 "--strong-model", STRONG, "--max-tokens", "24", "--alpha", "1",
                 "--folds", "3", *enc]) == 0  # fmt: skip
    assert "APGR" in capsys.readouterr().out

    inp = tmp_path / "in.jsonl"
    rows = [{"id": "b", "prompt": "hi"},
            {"id": "a", "prompt": [{"role": "user", "content": "write python code " * 5}]},
            {"id": "c", "messages": [{"role": "system", "content": "be brief"},
                                     {"role": "user", "content": "thanks"}]}]  # fmt: skip
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    common = ["--model", str(model), *enc]
    assert _run(["score", "--input", str(inp), "--output", str(out), *common]) == 0
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in scored] == ["b", "a", "c"]
    assert scored[1]["score"] > scored[0]["score"]

    plot = tmp_path / "plot.html"
    assert _run(["eval", "--data", str(data), "--weak-model", WEAK, "--strong-model", STRONG,
                 "--plot", str(plot), *common]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "prompt length" in text and "in-sample" in text
    assert "<svg" in plot.read_text()

    assert _run(["calibrate", "--prompts", str(data), "--target-strong-share", "0.3",
                 "--json", *common]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert 0.0 <= result["threshold"] <= 1.0 and result["prompts"] == 120
    assert _run(["calibrate", "--prompts", str(data), "--target-strong-share", "1.5",
                 *common]) == 2  # fmt: skip


def test_score_rejects_bad_rows(tmp_path: Path) -> None:
    inp = tmp_path / "bad.jsonl"
    inp.write_text('{"id": 1, "prompt": 5}\n')
    assert _run(["score", "--input", str(inp), "--output", str(tmp_path / "o.jsonl")]) == 2


def test_evaluate_report_and_html(tmp_path: Path) -> None:
    data = load_outcomes([_write_data(tmp_path / "syn.jsonl")], WEAK, STRONG)
    gain = data.strong - data.weak
    rep = evaluate_scores(data, gain, np.arange(len(data)))
    assert rep.router.apgr > rep.random.apgr
    assert rep.weak_quality < rep.strong_quality
    assert "<svg" in render_html("t", rep) and "always-weak" in render_html("t", rep)


def test_broken_groups_are_found_and_left_out_of_fitting(
    tiny_encoder: Encoder, tmp_path: Path
) -> None:
    from router.classify.train import broken_groups

    path = _write_data(tmp_path / "syn.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for r in rows:
        if r["source"] == "syn/0":
            r["scores"][STRONG] = 0.0  # the strong model "fails" a whole subject
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_outcomes([path], WEAK, STRONG)
    assert broken_groups(data, 0.25) == {"syn/0": 0.0}
    cfg = TrainConfig(alpha=1.0, folds=3, min_group_strong=0.25)
    meta = train_model([path], tmp_path / "m", tiny_encoder, WEAK, STRONG, cfg)
    assert meta["excluded_from_fit"] == {"syn/0": "strong mean 0.00"}
