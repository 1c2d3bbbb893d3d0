"""Lexical complexity beside length: rare words, long words, sentence length (lab tooling).

Run ``python -m router.lab.lexical --data ../shared/data/router``.

Harder questions might use rarer, longer words in longer sentences. Each column here is
computed from the last user turn's text alone (the encoder's tokenizer splits a rare word into
several word pieces); none needs a model:

- ``rare_share``: share of words the tokenizer splits into two or more pieces;
- ``pieces_per_word``: mean word pieces per word;
- ``word_len``: mean letters per word; ``long_word_share``: share of words of 9+ letters;
- ``ttr``: distinct words over words; ``words_per_sentence``;
- ``nonalpha_share``: punctuation and symbols over characters; ``upper_share``: capitals.

Two views, both leave one family out: each column's partial correlation with the gain given
length, per family (:func:`router.lab.invariant.partial_effects`: a column worth adding has the
same sign in every family), and a **nested** choice per held-out family F of
``score = z(log tokens) + λ · z(±column)`` (z within the family scored; sign and λ ∈ {0, ...}
chosen on the other families by the rule's :func:`router.classify.lofo.pick`: worst gain over
length first), scored on F.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from router.classify.corpus import load_corpus
from router.classify.design import zscore
from router.classify.encoder import Encoder
from router.classify.lofo import F64, Candidate, family_apgr, pick
from router.lab.invariant import partial_effects

WORD = re.compile(r"[A-Za-z]+")
SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
COLUMNS = (
    "rare_share",
    "pieces_per_word",
    "word_len",
    "long_word_share",
    "ttr",
    "words_per_sentence",
    "nonalpha_share",
    "upper_share",
)


def _mean(values: Sequence[float], empty: float) -> float:
    return float(np.mean(values)) if values else empty


def lexical_columns(texts: Sequence[str], pieces: Callable[[str], int]) -> dict[str, F64]:
    """The :data:`COLUMNS` of each text; ``pieces(word)`` is the tokenizer's piece count."""
    counts: dict[str, int] = {}

    def n_pieces(w: str) -> int:
        if w not in counts:
            counts[w] = pieces(w)
        return counts[w]

    rows: list[list[float]] = []
    for text in texts:
        words = WORD.findall(text.lower())
        chars = max(1, len(text))
        split = [n_pieces(w) for w in words]
        sentences = max(1, len(SENTENCE_END.findall(text)))
        rows.append([
            _mean([float(p > 1) for p in split], 0.0),
            _mean([float(p) for p in split], 1.0),
            _mean([float(len(w)) for w in words], 0.0),
            _mean([float(len(w) >= 9) for w in words], 0.0),
            len(set(words)) / len(words) if words else 1.0,
            len(words) / sentences,
            sum(not c.isalnum() and not c.isspace() for c in text) / chars,
            sum(c.isupper() for c in text) / chars,
        ])  # fmt: skip
    table = np.asarray(rows, dtype=np.float64).reshape(len(texts), len(COLUMNS))
    return {name: table[:, i] for i, name in enumerate(COLUMNS)}


def _scored(column: F64, length: F64, rows: npt.NDArray[np.bool_], sign: int, lam: float) -> F64:
    out = np.zeros(len(length))
    out[rows] = zscore(length[rows]) + lam * sign * zscore(column[rows])
    return out


def nested_gains(
    column: F64,
    length: F64,
    units: npt.NDArray[np.str_],
    weak: F64,
    strong: F64,
    lambdas: Sequence[float],
) -> dict[str, tuple[float, float]]:
    """Per held-out family: the signed λ chosen without it and its APGR gain over length there."""
    names = list(dict.fromkeys(str(u) for u in units))
    base = family_apgr(length, units, weak, strong, names)
    gains: dict[tuple[int, float], dict[str, float]] = {}
    for sign in (1, -1):
        for lam in (0.0, *lambdas):
            gains[(sign, lam)] = {
                f: family_apgr(_scored(column, length, units == f, sign, lam), units, weak,
                               strong, [f])[f]
                for f in names
            }  # fmt: skip
    out: dict[str, tuple[float, float]] = {}
    for f in names:
        others = [u for u in names if u != f]
        results = {Candidate(str(s), lam, 0.0): {g: r[g] for g in others}
                   for (s, lam), r in gains.items()}  # fmt: skip
        c = pick(results, {g: base[g] for g in others})
        signed = int(c.config) * c.lam
        out[f] = (signed, gains[(int(c.config), c.lam)][f] - base[f])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Print the partial effects and the nested gains of every lexical column."""
    p = argparse.ArgumentParser(prog="python -m router.lab.lexical", description=__doc__)
    p.add_argument("--data", type=Path, nargs="+", default=[Path("../shared/data/router")])
    p.add_argument("--lambdas", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3, 0.5, 1.0])
    args = p.parse_args(argv)
    corpus = load_corpus(args.data)
    encoder = Encoder.load(device="cpu", runtime="onnx", max_tokens=48)
    prompts = corpus.outcomes.prompts
    cols = lexical_columns([q.user for q in prompts], lambda w: len(encoder.plain_ids([w])[0]))
    length = np.log1p(np.asarray(encoder.user_tokens(prompts), dtype=np.float64))
    units, weak, strong = corpus.families, corpus.outcomes.weak, corpus.outcomes.strong
    names = corpus.family_names()
    base = family_apgr(length, units, weak, strong, names)
    print("partial correlation with the gain given length, per family:")
    print(f"{'':<20}" + "".join(f"{n[:8]:>9}" for n in names))
    table = np.stack(list(cols.values()), axis=1)
    effects = {f: partial_effects(table[units == f], (strong - weak)[units == f],
                                  length[units == f]) for f in names}  # fmt: skip
    for i, name in enumerate(cols):
        print(f"{name:<20}" + "".join(f"{effects[f][i]:>+9.3f}" for f in names))
    print("nested gain over length (signed λ chosen without the family):")
    print(f"{'prompt length APGR':<20}" + "".join(f"{base[f]:>9.4f}" for f in names))
    for name, col in cols.items():
        res = nested_gains(col, length, units, weak, strong, args.lambdas)
        d = [res[f][1] for f in names]
        mean = np.mean([base[f] + x for f, x in zip(names, d, strict=True)])
        print(f"{name:<20}" + "".join(f"{x:>+9.4f}" for x in d)
              + f"  worst {min(d):+.4f}, mean APGR {mean:.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
