"""Fixtures: a tiny BERT encoder on disk, loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.classify.encoder import Encoder, TorchBackend
from tests.unit.classify.tiny_bert import build_tiny_bert


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a random-weight 1-layer BERT with a small WordPiece vocabulary."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_encoder(tiny_bert_dir: Path) -> Encoder:
    """An :class:`Encoder` over the tiny BERT on CPU, 24-token budget."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_bert_dir / "tokenizer.json"))
    return Encoder(tok, TorchBackend(tiny_bert_dir, "cpu", threads=1), max_tokens=24, max_batch=4)
