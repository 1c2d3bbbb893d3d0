"""Nearest neighbours over the frozen embedding, leave one family out (lab tooling, not served).

Run ``python -m router.lab.knn --data ../shared/data/router --embeddings-cache E.npz``.

A prompt's learned score is the mean target (the strong model's gain, standardised within its
family; :func:`router.classify.design.target_and_weight`) of its ``k`` most similar training
prompts (cosine on the unit-length MiniLM embedding), each neighbour weighted by its family's
row weight so that MMLU's 10k rows do not outvote the other families. A held-out family's
prompts only see the other families' rows. ``score = z(log tokens) + λ · z(knn)``, both z's
over the training rows (a training row's own kNN score leaves the row itself out), λ chosen by
the rule (:func:`router.lab.finetune.lofo_table`). Unlike a ridge, kNN can follow a local
pattern (a kind of prompt that is hard for the weak model) without one global direction.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from router.classify.corpus import load_corpus, parse_pair_overrides
from router.classify.design import (
    Design,
    Learned,
    corpus_design,
    encode_outcomes,
    target_and_weight,
)
from router.classify.lofo import F64

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


def knn_scores(
    query: F32,
    base: F32,
    target: F64,
    weight: F64,
    k: int,
    self_index: I64 | None = None,
    chunk: int = 1024,
) -> F64:
    """Weighted mean ``target`` of each query's ``k`` nearest ``base`` rows (dot product of
    unit vectors). ``self_index[i]`` (a row of ``base``, or -1) is excluded for query ``i``."""
    k = min(k, len(base) - (1 if self_index is not None else 0))
    out = np.zeros(len(query))
    for start in range(0, len(query), chunk):
        sim = query[start : start + chunk] @ base.T
        if self_index is not None:
            idx = self_index[start : start + chunk]
            rows = np.flatnonzero(idx >= 0)
            sim[rows, idx[rows]] = -np.inf
        near = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        w = weight[near]
        out[start : start + chunk] = (w * target[near]).sum(axis=1) / w.sum(axis=1)
    return out


def run_lofo(
    emb: F32, design: Design, k: int, difficulty_share: float = 0.0, ref_per_family: int = 200
) -> tuple[F64, F64]:
    """Every family scored by kNN over the other families: ``(knn, length)``, each
    standardised over its fold's training rows (a sample of ``ref_per_family`` per family)."""
    names = design.names()
    y, w = target_and_weight(design, Learned(difficulty_share=difficulty_share), 0.0)
    length = design.x[:, design.length_col]
    rng = np.random.default_rng(0)
    learned = np.zeros(len(y))
    length_z = np.zeros(len(y))
    for u in names:
        train = np.flatnonzero(design.units != u)
        held = np.flatnonzero(design.units == u)
        ref = np.concatenate([
            rng.choice(rows, min(ref_per_family, len(rows)), replace=False)
            for v in names if v != u
            for rows in (np.flatnonzero(design.units == v),)
        ])  # fmt: skip
        position = np.full(len(y), -1, dtype=np.int64)
        position[train] = np.arange(len(train))
        base, yt, wt = emb[train], y[train], w[train]
        s_held = knn_scores(emb[held], base, yt, wt, k)
        s_ref = knn_scores(emb[ref], base, yt, wt, k, self_index=position[ref])
        learned[held] = (s_held - s_ref.mean()) / (s_ref.std() or 1.0)
        length_z[held] = (length[held] - length[train].mean()) / (length[train].std() or 1.0)
    return learned, length_z


def main(argv: Sequence[str] | None = None) -> int:
    """Print one table per ``k``."""
    from router.classify.encoder import Encoder
    from router.lab.candidates import format_rows
    from router.lab.finetune import lofo_table

    p = argparse.ArgumentParser(prog="python -m router.lab.knn", description=__doc__)
    p.add_argument("--data", type=Path, nargs="+", default=[Path("../shared/data/router")])
    p.add_argument("--pair", action="append", default=[], metavar="FILE=WEAK,STRONG")
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--embeddings-cache", type=Path)
    p.add_argument("-k", type=int, nargs="+", default=[10, 50, 200])
    p.add_argument("--difficulty-share", type=float, default=0.0)
    args = p.parse_args(argv)
    corpus = load_corpus(args.data, parse_pair_overrides(args.pair))
    encoder = Encoder.load(device="cpu", runtime="onnx", max_tokens=args.max_tokens)
    emb, tokens = encode_outcomes(encoder, corpus.outcomes, args.embeddings_cache)
    design = corpus_design(corpus, emb, tokens)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12)
    for k in args.k:
        learned, length_z = run_lofo(unit.astype(np.float32), design, k, args.difficulty_share)
        table, chosen = lofo_table(learned, length_z, design)
        print(f"k = {k}, target share of difficulty {args.difficulty_share:g}")
        print(format_rows(list(table.items())))
        print(f"rule picks λ {chosen.lam:g}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
