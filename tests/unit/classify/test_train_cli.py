"""Training on synthetic outcomes with a tiny encoder, and the four CLI commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from router.classify.corpus import load_corpus
from router.classify.dataset import load_outcomes
from router.classify.design import LabelledPrompt, TrainConfig
from router.classify.encoder import Encoder
from router.classify.features import FEATURE_NAMES, feature_matrix
from router.classify.inputs import PromptText
from router.classify.train import score_head, train_head, train_model
from router.cli import calibrate as calibrate_cli
from router.cli import eval as eval_cli
from router.cli import score as score_cli
from router.cli import train as train_cli
from router.lab.evaluate import evaluate_scores, format_report, render_html

WEAK, STRONG = "weak-model", "strong-model"


def _write_data(path: Path, n: int = 120, seed: int = 0) -> Path:
    """Long, code-heavy prompts need the strong model; short chat does not."""
    rng = np.random.default_rng(seed)
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


def test_features_see_code_and_length() -> None:
    f = feature_matrix([PromptText("```\ndef f(x):\n    return x;\n```"), PromptText("hi")],
                       np.array([12, 1]))  # fmt: skip
    code = FEATURE_NAMES.index("code")
    assert f[0, code] > f[1, code] and f[0, 0] > f[1, 0]


def _two_families(tmp_path: Path) -> Path:
    """A directory of two files: one with the default pair names, one needing ``--pair``."""
    d = tmp_path / "data"
    d.mkdir()
    _write_data(d / "chat.jsonl")
    rows = [json.loads(line) for line in _write_data(tmp_path / "other.jsonl", seed=1)
            .read_text().splitlines()]  # fmt: skip
    for r in rows:
        r["scores"] = {"tiny": r["scores"][WEAK], "huge": r["scores"][STRONG], "mid": 0.5}
    (d / "code.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def test_train_model_takes_a_directory_and_records_pairs(
    tiny_encoder: Encoder, tmp_path: Path
) -> None:
    data = _two_families(tmp_path)
    meta = train_model([data], tmp_path / "model", tiny_encoder, {"code": ("tiny", "huge")},
                       (WEAK, STRONG), TrainConfig(nested=False),
                       cache=tmp_path / "cache.npz")  # fmt: skip
    assert (tmp_path / "model" / "head.npz").is_file()
    on_disk = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert on_disk["source"] == meta["source"] and on_disk["kind"] == "linear-lofo"
    pairs = {d["file"]: (d["weak_model"], d["strong_model"], d["pair_reason"])
             for d in on_disk["data"]}  # fmt: skip
    assert pairs == {"chat.jsonl": (WEAK, STRONG, "default pair"),
                     "code.jsonl": ("tiny", "huge", "override")}  # fmt: skip
    fams = on_disk["validation"]["families"]
    assert set(fams) == {"chat", "code"}
    for f in fams.values():  # never worse than length on a held-out family
        assert f["router"]["apgr"] >= f["prompt_length"]["apgr"] - 1e-9
    assert set(on_disk["weights"]) >= {"lam", "structure", "learned"}
    assert (tmp_path / "cache.npz").is_file()


def test_train_head_with_extra_rows_and_score_head(tiny_encoder: Encoder, tmp_path: Path) -> None:
    corpus = load_corpus([_two_families(tmp_path)], {"code": ("tiny", "huge")}, (WEAK, STRONG))
    hard = PromptText("write python code def f ( x ) " * 2)
    extra = [LabelledPrompt(hard, 1.0)] * 12 + [LabelledPrompt(PromptText("hi"), 0.0)] * 12
    trained = train_head(corpus, tiny_encoder, extra, TrainConfig(extra_folds=3))
    assert trained.metadata["extra_rows"] == 24
    assert trained.metadata["weights"]["chosen_by"] == "extra-rows folds"  # type: ignore[index]
    assert "extra_rows_out_of_fold_apgr" in trained.metadata
    score = score_head(trained.head, tiny_encoder, extra)
    assert score.rows == 24 and score.apgr > 0.5 and 0.0 <= score.cpt50 <= 1.0
    assert set(score.as_dict()) == {"rows", "apgr", "cpt50", "length_apgr", "length_cpt50"}
    only_extra = train_head(None, tiny_encoder, extra, TrainConfig(extra_folds=3))
    assert only_extra.validation is None


def test_cli_train_score_eval_calibrate(
    tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _two_families(tmp_path)
    model = tmp_path / "model"
    enc = ["--encoder-dir", str(tiny_bert_dir), "--device", "cpu"]
    assert (
        _run(
            [
                "train",
                "--data",
                str(data),
                "--out",
                str(model),
                "--weak-model",
                WEAK,
                "--strong-model",
                STRONG,
                "--max-tokens",
                "24",
                "--no-nested",
                *enc,
            ]
        )
        == 2
    )
    assert "--pair code=WEAK,STRONG" in capsys.readouterr().err
    assert _run(["train", "--data", str(data), "--out", str(model), "--weak-model", WEAK,
                 "--strong-model", STRONG, "--pair", "code=tiny,huge", "--max-tokens", "24",
                 "--no-nested", *enc]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "leave-one-family-out" in out and "tiny vs huge (override)" in out

    inp = tmp_path / "in.jsonl"
    rows = [{"id": "b", "prompt": "hi"},
            {"id": "a", "prompt": [{"role": "user", "content": "write python code " * 5}]},
            {"id": "c", "messages": [{"role": "system", "content": "be brief"},
                                     {"role": "user", "content": "thanks"}]}]  # fmt: skip
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out_file = tmp_path / "out.jsonl"
    common = ["--model", str(model), *enc]
    assert _run(["score", "--input", str(inp), "--output", str(out_file), *common]) == 0
    scored = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [r["id"] for r in scored] == ["b", "a", "c"]
    assert scored[1]["score"] > scored[0]["score"]

    one = data / "chat.jsonl"
    plot = tmp_path / "plot.html"
    assert _run(["eval", "--data", str(one), "--weak-model", WEAK, "--strong-model", STRONG,
                 "--plot", str(plot), *common]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "prompt length" in text and "in-sample" in text
    assert "<svg" in plot.read_text()

    assert _run(["eval", "--data", str(data), "--weak-model", WEAK, "--strong-model", STRONG,
                 "--pair", "code=tiny,huge", "--json", *common]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert set(result["families"]) == {"chat", "code"}
    for fam in result["families"].values():
        assert set(fam) >= {"rows", "router", "prompt_length"}  # nested: 3+ families
        assert set(fam["router"]) == {"apgr", "cpt50", "cpt80"}
        ci = fam["gain_over_length"]["router"]
        assert ci["delta"] == pytest.approx(
            fam["router"]["apgr"] - fam["prompt_length"]["apgr"], abs=2e-4
        )
        assert ci["low"] <= ci["delta"] <= ci["high"] and ci["resamples"] == 1000
    assert set(result["mean"]) == {"router_apgr", "prompt_length_apgr"}
    assert isinstance(result["beats_length_on_every_family"], bool)
    assert result["pairs"]["code.jsonl"] == {"weak": "tiny", "strong": "huge", "reason": "override"}
    assert _run(["eval", "--data", str(data), "--pair", "code=tiny,huge", "--weak-model", WEAK,
                 "--strong-model", STRONG, "--no-nested", *common]) == 0  # fmt: skip
    table = capsys.readouterr().out
    assert "held-out family" in table and "chat" in table and "mean" in table
    assert "paired bootstrap interval" in table
    assert _run(["eval", "--data", str(data), "--pair", "code=tiny,huge", "--weak-model", WEAK,
                 "--strong-model", STRONG, "--no-nested", "--resamples", "0",
                 *common]) == 0  # fmt: skip
    assert "bootstrap" not in capsys.readouterr().out
    assert _run(["eval", "--data", str(data), "--resamples", "-1", *common]) == 2
    assert "--resamples" in capsys.readouterr().err

    assert _run(["calibrate", "--prompts", str(one), "--target-strong-share", "0.3",
                 "--json", *common]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert 0.0 <= result["threshold"] <= 1.0 and result["prompts"] == 120
    assert _run(["calibrate", "--prompts", str(one), "--target-strong-share", "1.5",
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
    assert rep.gain_over_length is None and "gain_over_length" not in rep.as_dict()
    with_ci = evaluate_scores(data, gain, np.arange(len(data)), resamples=200)
    assert with_ci.gain_over_length is not None and with_ci.gain_over_length.low > 0
    assert "trained - length APGR" in format_report("t", with_ci)
    assert rep.weak_quality < rep.strong_quality
    assert "<svg" in render_html("t", rep) and "always-weak" in render_html("t", rep)


def test_cli_feedback_rows_are_the_deployments_own_labels(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    feedback = tmp_path / "feedback_rows.jsonl"
    rows = [{"id": f"f{i}", "prompt": "write python code " * (1 + 3 * (i % 2)),
             "scores": {WEAK: float(1 - i % 2), STRONG: 1.0}} for i in range(20)]  # fmt: skip
    feedback.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def with_feedback(args: argparse.Namespace) -> list[Path]:
        return [*args.data, feedback]  # what --from-ledger appends

    monkeypatch.setattr(train_cli, "ledger_training_data", with_feedback)
    enc = ["--encoder-dir", str(tiny_bert_dir), "--device", "cpu", "--max-tokens", "24"]
    model = tmp_path / "model"
    assert _run(["train", "--from-ledger", "--out", str(model), "--weak-model", WEAK,
                 "--strong-model", STRONG, *enc]) == 0  # fmt: skip
    assert "20 feedback rows" in capsys.readouterr().out
    meta = json.loads((model / "metadata.json").read_text())
    assert meta["extra_rows"] == 20 and meta["validation"] is None and meta["data"] == []
    data = _two_families(tmp_path)
    assert _run(["train", "--from-ledger", "--data", str(data), "--pair", "code=tiny,huge",
                 "--out", str(model), "--weak-model", WEAK, "--strong-model", STRONG,
                 "--no-nested", *enc]) == 0  # fmt: skip
    meta = json.loads((model / "metadata.json").read_text())
    assert meta["extra_rows"] == 20 and set(meta["validation"]["families"]) == {"chat", "code"}
    assert meta["weights"]["chosen_by"] == "extra-rows folds"


SHIPPED = Path(__file__).resolve().parents[3] / "router" / "classify" / "model"


def test_shipped_metadata_records_pairs_and_the_held_out_table() -> None:
    meta = json.loads((SHIPPED / "metadata.json").read_text())
    assert meta["encoder_max_tokens"] == 48 and meta["kind"] == "linear-lofo"
    files = {d["file"]: d for d in meta["data"]}
    assert len(files) == 6
    for d in files.values():
        assert d["weak_model"] and d["strong_model"] and d["pair_reason"] and d["sha256"]
    fams = meta["validation"]["families"]
    assert len(fams) == 8
    for f in fams.values():  # never worse than prompt length on a held-out family
        assert f["router"]["apgr"] >= f["prompt_length"]["apgr"]
        assert f["nested_router"]["apgr"] >= f["prompt_length"]["apgr"] - 0.01
    assert set(meta["weights"]) >= {"learned", "lam", "structure"}


def _write_inverted(path: Path, n: int = 300, seed: int = 1) -> Path:
    """Traffic where length points the wrong way: short proofs need the strong model, long
    small talk does not. Outcomes are noisy, as judged traffic is."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        hard = i % 2 == 0
        text = (
            "prove the lemma for all n"
            if hard
            else "hello there , thanks a lot for the lovely chat about the weather today " * 2
        )
        strong = 1.0 if hard or rng.random() < 0.5 else 0.0
        weak = 0.0 if hard and rng.random() < 0.9 else strong
        rows.append({"id": f"t/{i}", "prompt": text, "scale": "binary",
                     "scores": {WEAK: weak, STRONG: strong}})  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_eval_adapt_replays_labels_and_reports_intervals(
    tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    enc = ["--encoder-dir", str(tiny_bert_dir), "--device", "cpu"]
    assert _run(["train", "--data", str(_two_families(tmp_path)), "--out", str(model),
                 "--weak-model", WEAK, "--strong-model", STRONG, "--pair", "code=tiny,huge",
                 "--max-tokens", "24", "--no-nested", *enc]) == 0  # fmt: skip
    capsys.readouterr()
    traffic = _write_inverted(tmp_path / "traffic.jsonl")
    args = ["eval", "--adapt", "150", "--data", str(traffic), "--model", str(model), *enc]
    assert _run([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["k"], out["n_rest"], out["weak_model"]) == (150, 150, WEAK)
    assert out["promoted"] is True and out["after"]["apgr"] > out["before"]["apgr"] + 0.1
    gain = out["after_minus_before"]
    assert gain["delta"] == pytest.approx(out["after"]["apgr"] - out["before"]["apgr"], abs=2e-4)
    assert 0 < gain["low"] <= gain["delta"] <= gain["high"]
    assert out["after_minus_length"]["low"] > 0  # length points the wrong way here
    assert _run(args) == 0
    text = capsys.readouterr().out
    assert "promoted" in text and "after - before: +" in text and "paired bootstrap" in text
