"""The static first stage on a tiny random-weight encoder: deterministic distillation, a table
built once and memory-mapped, and embeddings that do not depend on their batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from router.classify.encoder import Encoder
from router.classify.static import StaticEmbedder, distill, ensure_table


def test_distillation_is_deterministic_centred_and_one_row_per_token(
    tiny_encoder: Encoder,
) -> None:
    first, again = distill(tiny_encoder), distill(tiny_encoder)
    np.testing.assert_array_equal(first, again)
    # 32-wide encoder: every principal axis is kept
    assert first.shape == (tiny_encoder.vocab_size, 32) and first.dtype == np.float32
    # centred: the shared mean direction that pulls every prompt together is gone
    assert float(np.abs(first.mean(axis=0)).max()) < 1e-4
    assert np.all(np.isfinite(first))


def test_the_table_is_built_once_and_memory_mapped(
    tiny_encoder: Encoder, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    path = ensure_table(tiny_encoder, tiny_bert_dir, tmp_path)
    built = path.stat().st_mtime_ns
    assert ensure_table(tiny_encoder, tiny_bert_dir, tmp_path) == path
    assert path.stat().st_mtime_ns == built  # found, not rebuilt
    static = StaticEmbedder.load(tiny_encoder, path)
    assert isinstance(np.load(path, mmap_mode="r"), np.memmap)
    np.testing.assert_array_equal(np.asarray(static._table), distill(tiny_encoder))


@pytest.fixture
def static(tiny_encoder: Encoder) -> StaticEmbedder:
    return StaticEmbedder(tiny_encoder, distill(tiny_encoder))


def test_embeddings_are_unit_vectors_independent_of_the_batch(static: StaticEmbedder) -> None:
    texts = ["prove the theorem", "write python code", "hello", "x = 1 + 2 ; return x"]
    together = static.embed(texts)
    alone = [static.embed([t])[0] for t in texts]
    for a, b in zip(together, alone, strict=True):
        assert a is not None and b is not None
        np.testing.assert_array_equal(a, b)
        assert a.shape == (32,) and abs(float(np.linalg.norm(a)) - 1.0) < 1e-5
    # different prompts, different vectors
    assert together[0] is not None and together[1] is not None
    assert float(together[0] @ together[1]) < 0.999


def test_empty_and_unknown_prompts(static: StaticEmbedder, tiny_encoder: Encoder) -> None:
    empty, blank, unknown = static.embed(["", "   \n", "日本 語"])
    assert empty is None and blank is None  # no tokens: no embedding, so no semantic lookup
    # characters outside the vocabulary are [UNK] tokens: a real (if uninformative) vector
    (ids,) = tiny_encoder.plain_ids(["日本 語"])
    assert ids and len(set(ids)) == 1
    assert unknown is not None and abs(float(np.linalg.norm(unknown)) - 1.0) < 1e-5


def test_a_table_for_another_vocabulary_is_refused(tiny_encoder: Encoder) -> None:
    with pytest.raises(ValueError, match="tokens"):
        StaticEmbedder(tiny_encoder, np.zeros((3, 8), np.float32))
