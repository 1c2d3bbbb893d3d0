"""Every candidate signal, leave one family out, beside prompt length (lab tooling, not served).

Run ``python -m router.lab.candidates --data ../shared/data/router --embeddings-cache E.npz``.
Rows, each with APGR per held-out family, the worst family's gain over length and the mean:

- ``ref:`` rows read the labels (the true gain; the other models' mean miss rate, alone and
  added to length at each ``--ref-lambdas`` weight; that sum at each family's own best weight):
  ceilings, not routers;
- ``feature:`` rows route by one cheap feature alone (no fitting); ``head:`` rows by a saved
  head (``--head DIR``, e.g. an earlier shipped one);
- ``learned:`` rows route by a learned ridge direction alone (each family scored by a fit on
  the others), ``+length λ`` rows by length plus λ times it; ``structure s`` rows by length plus
  the structure prior.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from router.classify.corpus import load_corpus, parse_pair_overrides
from router.classify.design import (
    Design,
    Learned,
    TrainConfig,
    corpus_design,
    encode_outcomes,
    zscore,
)
from router.classify.encoder import Encoder
from router.classify.features import FEATURE_NAMES
from router.classify.head import LinearHead
from router.classify.lofo import F64, family_apgr
from router.classify.validate import all_stats, held_out_parts

Row = tuple[str, dict[str, float]]


EXTRA_LEARNED = (Learned(1.0, True, 1e4, True), Learned(1.0, False, 1e4, True))
"""Beyond the shipped search: the pair-free difficulty alone as the target."""


REF_LAMBDAS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 1e3)
"""Weights of the other models' miss rate added to length in the ``ref:`` rows."""


def reference_rows(design: Design, difficulty: F64, lambdas: Sequence[float]) -> list[Row]:
    """The label-reading ceilings: per-family APGR of the true gain, of the other models' miss
    rate, of ``z(length) + λ · z(miss rate)`` (z within each family; a family without other
    models gets 0) at each of ``lambdas``, and of that sum at the weight best for each family
    on its own labels (tuned on the very rows it is scored on: not a router)."""
    names = design.names()

    def fam(score: F64) -> dict[str, float]:
        return family_apgr(score, design.units, design.weak, design.strong, names)

    rows: list[Row] = [("ref: true gain (oracle)", fam(design.strong - design.weak))]
    if np.isnan(difficulty).all():
        return rows
    miss = np.nan_to_num(difficulty, nan=0.0)
    rows.append(("ref: other models' miss rate", fam(miss)))
    length = design.x[:, design.length_col]
    best = fam(length)
    for lam in lambdas:
        score = np.zeros(len(length))
        for name in names:
            rows_of = design.units == name
            score[rows_of] = zscore(length[rows_of]) + lam * zscore(miss[rows_of])
        got = fam(score)
        rows.append((f"ref: length + {lam:g} · miss rate", got))
        best = {n: max(best[n], got[n]) for n in names}
    rows.append(("ref: length + miss rate, own best λ", best))
    return rows


def candidate_rows(
    design: Design,
    difficulty: F64,
    lambdas: Sequence[float],
    heads: Sequence[Path] = (),
    ref_lambdas: Sequence[float] = REF_LAMBDAS,
    learned: bool = True,
) -> list[Row]:
    """Per-family APGR of every candidate (see the module docstring); ``learned=False`` keeps
    length, the references, the single features and the heads (seconds instead of minutes)."""
    names = design.names()

    def fam(score: F64) -> dict[str, float]:
        return family_apgr(score, design.units, design.weak, design.strong, names)

    length = design.x[:, design.length_col]
    rows: list[Row] = [("prompt length (log tokens)", fam(length))]
    rows += reference_rows(design, difficulty, ref_lambdas)
    tiny = 1e-9 * length  # break ties of count features by length
    for j, name in enumerate(FEATURE_NAMES):
        rows.append((f"feature: {name}", fam(design.x[:, design.embedding_dim + j] + tiny)))
    for directory in heads:  # e.g. an earlier shipped head, from git show
        head = LinearHead.load(directory)
        x32 = design.x.astype(np.float32)
        raw = head.raw(x32[:, : design.embedding_dim], x32[:, design.embedding_dim :])
        rows.append((f"head: {directory}", fam(raw)))
    if not learned:
        return rows
    cfg = TrainConfig(learned=TrainConfig().learned + EXTRA_LEARNED)
    parts = held_out_parts(design, cfg, all_stats(design, cfg), names)
    first = next(iter(parts.values()))
    for s in (0.1, 0.2):
        rows.append((f"length + structure {s:g}", fam(first.combine(0.0, s))))
    for key, comp in parts.items():
        rows.append((f"learned: {key}", fam(comp.learned)))
        for lam in lambdas:
            rows.append((f"  + length, λ {lam:g}", fam(comp.combine(lam, 0.0))))
    return rows


def format_rows(rows: list[Row]) -> str:
    """A table: families as columns, the worst gain over length and the mean at the right."""
    names = list(rows[0][1])
    base = rows[0][1]
    lines = [f"{'candidate':<46}" + "".join(f"{n[:8]:>9}" for n in names) + "   worst    mean"]
    for label, r in rows:
        worst = min(r[n] - base[n] for n in names)
        lines.append(
            f"{label[:46]:<46}" + "".join(f"{r[n]:>9.3f}" for n in names)
            + f"  {worst:+.3f}  {np.mean(list(r.values())):.3f}"
        )  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table (or ``--json``)."""
    p = argparse.ArgumentParser(prog="python -m router.lab.candidates", description=__doc__)
    p.add_argument("--data", type=Path, nargs="+", default=[Path("../shared/data/router")])
    p.add_argument("--pair", action="append", default=[], metavar="FILE=WEAK,STRONG")
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--embeddings-cache", type=Path)
    p.add_argument("--lambdas", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    p.add_argument("--ref-lambdas", type=float, nargs="+", default=list(REF_LAMBDAS))
    p.add_argument("--head", type=Path, nargs="*", default=[], help="model dirs to score too")
    p.add_argument("--no-learned", action="store_true", help="skip the learned rows")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    corpus = load_corpus(args.data, parse_pair_overrides(args.pair))
    encoder = Encoder.load(device="cpu", runtime="onnx", max_tokens=args.max_tokens)
    emb, tokens = encode_outcomes(encoder, corpus.outcomes, args.embeddings_cache)
    design = corpus_design(corpus, emb, tokens)
    rows = candidate_rows(
        design, corpus.difficulty, args.lambdas, args.head, args.ref_lambdas, not args.no_learned
    )
    if args.json:
        print(json.dumps({k: {f: round(v, 4) for f, v in r.items()} for k, r in rows}, indent=1))
    else:
        print(f"{args.max_tokens}-token embeddings, {len(corpus)} rows")
        print(format_rows(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
