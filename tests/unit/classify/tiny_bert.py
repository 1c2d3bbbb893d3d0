"""A tiny random-weight BERT encoder and WordPiece tokenizer, built at test time."""

from __future__ import annotations

from pathlib import Path

WORDS = [
    "the",
    "a",
    "is",
    "of",
    "to",
    "and",
    "in",
    "what",
    "how",
    "why",
    "write",
    "code",
    "python",
    "function",
    "prove",
    "theorem",
    "integral",
    "hello",
    "hi",
    "thanks",
    "please",
    "explain",
    "step",
    "first",
    "then",
    "finally",
    "must",
    "should",
    "design",
    "compare",
    "sum",
    "x",
    "y",
    "z",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "0",
    "+",
    "-",
    "*",
    "/",
    "=",
    "(",
    ")",
    "{",
    "}",
    ";",
    ":",
    ",",
    ".",
    "?",
    "!",
    "`",
    "#",
    "def",
    "return",
    "class",
    "import",
]


def build_tiny_bert(directory: Path, hidden: int = 32, layers: int = 1) -> Path:
    """Write ``config.json``, weights and ``tokenizer.json`` of a tiny BERT into ``directory``."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import BertConfig, BertModel

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab_list = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    vocab_list += [w for w in letters if w not in vocab_list]
    vocab_list += [f"##{c}" for c in letters]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(vocab_list))}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    )
    model = BertModel(config)
    model.save_pretrained(str(directory))
    return directory
