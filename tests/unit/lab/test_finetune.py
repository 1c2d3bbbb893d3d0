"""Partial fine-tuning lab code on a tiny random-weight BERT (built at test time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from router.classify.design import Design
from router.classify.lofo import LAMBDAS
from router.lab import finetune as ft
from tests.unit.classify.tiny_bert import build_tiny_bert

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A 2-layer random BERT with eager attention."""
    from transformers import AutoModel

    path: Path = build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-2"), layers=2)
    torch.set_num_threads(1)
    return AutoModel.from_pretrained(
        str(path), local_files_only=True, attn_implementation="eager"
    ).eval()


def _seqs(n: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[2, *rng.integers(5, 60, int(rng.integers(1, 12))).tolist(), 3] for _ in range(n)]


def test_cached_lower_layers_plus_top_reproduce_the_full_model(tiny_model: Any) -> None:
    seqs = _seqs(7)
    ids, mask = ft.pad_batch(seqs, pad_id=0)
    with torch.inference_mode():
        full = tiny_model(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
        ).last_hidden_state
        m = torch.from_numpy(mask)[..., None].float()
        want = torch.nn.functional.normalize((full * m).sum(1) / m.sum(1), dim=1).numpy()
    states = ft.lower_states(tiny_model, seqs, split=1, pad_id=0, batch=3)
    assert states.hidden.dtype == np.float16
    assert states.lengths.tolist() == [len(s) for s in seqs]
    top = ft.build_top(tiny_model, split=1, n_features=0)
    hidden, tmask, _ = ft._tensors(states, np.zeros((7, 0)), np.arange(7))
    with torch.inference_mode():
        h = hidden
        for layer in top.get_submodule("layers").children():
            h = ft._layer(layer, h, ft.additive_mask(tmask, h.dtype))
        mm = tmask[..., None]
        got = torch.nn.functional.normalize((h * mm).sum(1) / mm.sum(1), dim=1).numpy()
    # fp16 cache: agreement to ~1e-3, not bit-exact.
    assert np.allclose(got, want, atol=5e-3)


def test_losses_are_within_batch() -> None:
    pred = torch.tensor([0.1, 0.5, -0.2])
    y = torch.tensor([1.0, 0.0, -1.0])
    assert float(ft.batch_loss(pred + 3.0, y, "mse")) == pytest.approx(
        float(ft.batch_loss(pred, y - 2.0, "mse")), abs=1e-6
    )
    good = ft.batch_loss(torch.tensor([2.0, 0.0, -2.0]), y, "rank")
    bad = ft.batch_loss(torch.tensor([-2.0, 0.0, 2.0]), y, "rank")
    assert float(good) < float(bad)
    assert float(ft.batch_loss(pred, torch.zeros(3), "rank")) == 0.0


@pytest.mark.parametrize("loss", ["mse", "rank"])
def test_training_learns_a_feature_signal(tiny_model: Any, loss: ft.Loss) -> None:
    seqs = _seqs(96, seed=1)
    states = ft.lower_states(tiny_model, seqs, split=1, pad_id=0)
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(96, 2))
    y = feats[:, 0] + 0.1 * rng.normal(size=96)
    cfg = ft.FitConfig(loss=loss, epochs=20, batch=16, lr_head=1e-2)
    groups = [np.arange(0, 48), np.arange(48, 96)]
    top = ft.train_top(tiny_model, 1, states, feats, y, groups, cfg)
    pred = ft.predict(top, states, feats, np.arange(96))
    assert np.corrcoef(pred, y)[0, 1] > 0.8


def test_lofo_scores_every_family_without_it(tiny_model: Any) -> None:
    n = 60
    rng = np.random.default_rng(3)
    seqs = _seqs(n, seed=4)
    states = ft.lower_states(tiny_model, seqs, split=1, pad_id=0)
    from router.classify.features import FEATURE_NAMES

    x = rng.normal(size=(n, len(FEATURE_NAMES)))
    design = Design(
        x=x,
        weak=rng.integers(0, 2, n).astype(np.float64),
        strong=rng.integers(0, 2, n).astype(np.float64),
        difficulty=np.full(n, np.nan),
        units=np.asarray(["a", "b", "c"] * (n // 3), dtype=np.str_),
        embedding_dim=0,
    )
    saved: list[dict[str, Any]] = []
    cfg = ft.FitConfig(epochs=1, batch=8, per_family=15)
    learned, length_z = ft.run_lofo(
        tiny_model, 1, states, design, cfg, save=lambda d: saved.append(dict(d))
    )
    assert set(saved[-1]) == {"a", "b", "c"}
    assert np.isfinite(learned).all() and np.isfinite(length_z).all()
    table, chosen = ft.lofo_table(learned, length_z, design)
    assert set(table["prompt length"]) == {"a", "b", "c"}
    assert chosen.lam in LAMBDAS
    # A resumed run reuses the saved folds (nothing retrained) and gives the same scores.
    again, again_length = ft.run_lofo(tiny_model, 1, states, design, cfg, done=saved[-1])
    assert np.array_equal(again, learned) and np.array_equal(again_length, length_z)


def test_frozen_layers_stay_unchanged(tiny_model: Any) -> None:
    seqs = _seqs(32, seed=5)
    states = ft.lower_states(tiny_model, seqs, split=1, pad_id=0)
    rng = np.random.default_rng(6)
    feats = rng.normal(size=(32, 2))
    cfg = ft.FitConfig(epochs=2, batch=8, lr_layers=0.0)
    top = ft.train_top(tiny_model, 1, states, feats, feats[:, 0], [np.arange(32)], cfg)
    before = dict(tiny_model.encoder.layer[1].named_parameters())
    for name, p in top.get_submodule("layers").named_parameters():
        assert torch.equal(p, before[name.split(".", 1)[1]])
    assert any(bool(p.abs().sum() > 0) for p in top.get_submodule("head").parameters())
