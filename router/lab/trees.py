"""Gradient-boosted trees on the cheap features, leave one family out, nested (lab tooling).

A non-linear learned part: scikit-learn's ``HistGradientBoostingRegressor`` on the 11 features,
the prompt-format type (:func:`router.lab.gate.prompt_type`, one-hot), the option spread of
a multiple-choice prompt and, optionally, the first principal components of the embedding. The
target is the strong model's gain standardised within each family (``train.py``'s "gain",
optionally mixed with the pair-free difficulty); rows are weighted so that every family counts
the same. The score is ``z(log tokens) + λ · z(trees)``, z over the training rows.

Numbers (:func:`run`): each family scored by trees fitted on the other seven. λ is chosen by the
maximin rule (the worst family's gain over length first) twice: on all eight families'
held-out scores (``in-sample choice``, selection-biased) and, for each family F, on the other
seven families' scores from trees fitted without F and without the family scored
(``nested``: the choice never saw F).

Run ``python -m router.lab.trees --data ../shared/data/router --embeddings-cache E.npz``
(about 60 tree fits; a few minutes on 2 busy cores). Not served: scikit-learn is a lab
dependency only.
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
from router.classify.encoder import Encoder
from router.classify.lofo import F64, family_apgr
from router.lab.gate import PROMPT_TYPES, option_spread, prompt_type

LAMBDAS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)


def tree_inputs(design: Design, types: npt.NDArray[np.str_], spread: F64, components: int) -> F64:
    """Features, type one-hot, option spread and ``components`` embedding PCs per row."""
    parts = [design.x[:, design.embedding_dim :], spread[:, None]]
    parts.append(np.stack([(types == t).astype(np.float64) for t in PROMPT_TYPES], axis=1))
    if components:
        emb = design.x[:, : design.embedding_dim]
        centred = emb - emb.mean(axis=0)
        _, _, vt = np.linalg.svd(centred[:: max(1, len(emb) // 4000)], full_matrices=False)
        parts.append(centred @ vt[:components].T)
    return np.hstack(parts)


def fit_predict(x: F64, y: F64, w: F64, train: npt.NDArray[np.bool_], seed: int = 0) -> F64:
    """Trees fitted on ``train`` rows; predictions for every row."""
    from sklearn.ensemble import HistGradientBoostingRegressor  # lab-only dependency

    model = HistGradientBoostingRegressor(
        max_iter=150, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=80,
        l2_regularization=1.0, random_state=seed,
    )  # fmt: skip
    model.fit(x[train], y[train], sample_weight=w[train])
    out: F64 = model.predict(x)
    return out


def _z(v: F64, rows: npt.NDArray[np.bool_]) -> F64:
    sd = float(v[rows].std()) or 1.0
    out: F64 = (v - float(v[rows].mean())) / sd
    return out


def run(design: Design, x: F64, target: Learned) -> dict[str, dict[str, float]]:
    """Per-family APGR rows: length, trees alone, length + λ trees, in-sample and nested."""
    names = design.names()
    y, w = target_and_weight(design, target, 0.0)
    length = design.x[:, design.length_col]
    units = design.units
    # held[F]: trees fitted without F; pair[(F, G)]: without F and G (for the nested choice)
    held: dict[str, F64] = {}
    pair: dict[tuple[str, str], F64] = {}
    for f in names:
        held[f] = fit_predict(x, y, w, units != f)
    for i, f in enumerate(names):
        for g in names[i + 1 :]:
            p = fit_predict(x, y, w, (units != f) & (units != g))
            pair[(f, g)] = pair[(g, f)] = p

    def fam(score: F64, fams: Sequence[str]) -> dict[str, float]:
        return family_apgr(score, units, design.weak, design.strong, fams)

    base = fam(length, names)

    def combined(lam: float, excluded: Sequence[str], scored: str) -> F64:
        p = held[scored] if len(excluded) == 1 else pair[(excluded[0], excluded[1])]
        tr = ~np.isin(units, list(excluded))
        return _z(length, tr) + lam * _z(p, tr)

    def choose(fams: Sequence[str], outer: str | None) -> float:
        best: tuple[tuple[float, float, float], float] | None = None
        for lam in LAMBDAS:
            gains = []
            for g in fams:
                excl = [g] if outer is None else [outer, g]
                gains.append(fam(combined(lam, excl, g), [g])[g] - base[g])
            key = (round(min(gains), 4), round(float(np.mean(gains)), 4), -lam)
            if best is None or key > best[0]:
                best = (key, lam)
        assert best is not None
        return best[1]

    rows: dict[str, dict[str, float]] = {"prompt length": base}
    alone = np.zeros(len(length))
    for f in names:
        alone[units == f] = held[f][units == f]
    rows["trees alone"] = fam(alone, names)
    for lam in LAMBDAS[1:]:
        s = np.zeros(len(length))
        for f in names:
            s[units == f] = combined(lam, [f], f)[units == f]
        rows[f"length + trees, λ {lam:g}"] = fam(s, names)
    lam_all = choose(names, None)
    rows[f"in-sample choice (λ {lam_all:g})"] = rows.get(f"length + trees, λ {lam_all:g}", base)
    nested: dict[str, float] = {}
    for f in names:
        lam_f = choose([g for g in names if g != f], f)
        nested[f] = fam(combined(lam_f, [f], f), [f])[f]
        print(f"  nested: without {f}, λ {lam_f:g}")
    rows["nested choice of λ"] = nested
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table."""
    from router.lab.candidates import format_rows

    p = argparse.ArgumentParser(prog="python -m router.lab.trees", description=__doc__)
    p.add_argument("--data", type=Path, nargs="+", default=[Path("../shared/data/router")])
    p.add_argument("--pair", action="append", default=[], metavar="FILE=WEAK,STRONG")
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--embeddings-cache", type=Path)
    p.add_argument("--components", type=int, default=0, help="embedding PCs as tree inputs")
    p.add_argument("--difficulty-share", type=float, default=0.0)
    args = p.parse_args(argv)
    corpus = load_corpus(args.data, parse_pair_overrides(args.pair))
    encoder = Encoder.load(device="cpu", runtime="onnx", max_tokens=args.max_tokens)
    emb, tokens = encode_outcomes(encoder, corpus.outcomes, args.embeddings_cache)
    design = corpus_design(corpus, emb, tokens)
    prompts = corpus.outcomes.prompts
    types = np.asarray([prompt_type(q) for q in prompts], dtype=np.str_)
    spread = np.asarray([option_spread(q) for q in prompts])
    x = tree_inputs(design, types, spread, args.components)
    rows = run(design, x, Learned(args.difficulty_share, False, 1.0, False))
    print(f"trees on {x.shape[1]} inputs, target gain + {args.difficulty_share:g} difficulty")
    print(format_rows(list(rows.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
