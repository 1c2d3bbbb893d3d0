"""Shared pieces of the lab's leave-one-family-out scripts: the design and the printed tables.

Each candidate module (:mod:`router.lab.invariant`, :mod:`router.lab.common_direction`) prints
the same two things: per setting, every family's APGR gain over prompt length (each family
scored by a fit on the others), and the nested choice (the setting chosen without the family)
with a paired bootstrap interval of its gain.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from router.classify.corpus import load_corpus
from router.classify.design import Design, corpus_design, encode_outcomes
from router.classify.encoder import Encoder
from router.classify.lofo import F64, Candidate, family_apgr, pick
from router.classify.metrics import apgr_delta_interval


def lab_parser(prog: str, description: str | None, ks: Sequence[int]) -> argparse.ArgumentParser:
    """The options every principal-component lab script takes: the data, the embeddings cache
    and token budget, the components ``--k`` (default ``ks``), ``--lambdas`` (0: length alone)
    and the bootstrap ``--resamples``."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--data", type=Path, nargs="+", default=[Path("../shared/data/router")])
    p.add_argument("--embeddings-cache", type=Path)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--k", type=int, nargs="+", default=list(ks))
    p.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.25, 0.5, 1.0])
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (0: none)")
    return p


def lab_design(data: Sequence[Path], max_tokens: int, cache: Path | None) -> Design:
    """The design of every file in ``data`` (int8 ONNX encoder on the CPU; ``cache`` reused)."""
    corpus = load_corpus(list(data))
    encoder = Encoder.load(device="cpu", runtime="onnx", max_tokens=max_tokens)
    emb, tokens = encode_outcomes(encoder, corpus.outcomes, cache)
    return corpus_design(corpus, emb, tokens)


def family_score(design: Design, score: F64, family: str) -> float:
    """APGR of ``score`` on ``family``'s rows."""
    rows = design.units == family
    return family_apgr(score[rows], design.units[rows], design.weak[rows], design.strong[rows],
                       [family])[family]  # fmt: skip


def length_apgr(design: Design) -> dict[str, float]:
    """Prompt length's APGR per family."""
    length = design.x[:, design.length_col]
    return {u: family_score(design, length, u) for u in design.names()}


S = TypeVar("S", bound=tuple[object, ...])
"""A lab script's setting; its last element is λ, the learned part's weight."""

Scorer = Callable[[S, str, Sequence[str], str], F64]
"""``(setting, held-out family, training families, family to score) -> scores`` (rows of the
family scored; the held-out family's prompts may shape unsupervised parts such as components)."""


def lofo_rows(
    design: Design, settings: Sequence[S], scorer: Scorer[S]
) -> dict[S, dict[str, float]]:
    """Per setting, each family's APGR scored by a fit on the other families."""
    names = design.names()
    return {
        setting: {
            f: family_score(design, scorer(setting, f, [u for u in names if u != f], f), f)
            for f in names
        }
        for setting in settings
    }


def nested_choice(
    design: Design, settings: Sequence[S], scorer: Scorer[S]
) -> dict[str, tuple[S, F64]]:
    """Per held-out family F: the setting chosen without F and its scores on F's rows.

    Each other family G is scored by a fit on the families that are neither F nor G; the
    setting whose worst G gains most over length wins (then the mean, then the smaller λ: the
    rule's own :func:`router.classify.lofo.pick`), and it is refitted on all but F to score F.
    """
    names = design.names()
    base = length_apgr(design)
    out: dict[str, tuple[S, F64]] = {}
    for f in names:
        others = [u for u in names if u != f]
        results: dict[Candidate, dict[str, float]] = {}
        by_candidate: dict[Candidate, S] = {}
        for setting in settings:
            c = Candidate(repr(setting), float(setting[-1]), 0.0)  # type: ignore[arg-type]
            by_candidate[c] = setting
            results[c] = {
                g: family_score(design, scorer(setting, f, [u for u in others if u != g], g), g)
                for g in others
            }
        best = by_candidate[pick(results, {g: base[g] for g in others})]
        out[f] = (best, scorer(best, f, others, f))
    return out


def gain_lines(
    base: Mapping[str, float], rows: Mapping[str, Mapping[str, float]], width: int
) -> list[str]:
    """The header, length's row and one row of gains over length per setting (worst, mean)."""
    names = list(base)
    lines = [
        f"{'':<{width}}" + "".join(f"{n[:8]:>9}" for n in names) + "    worst     mean",
        f"{'prompt length':<{width}}" + "".join(f"{base[n]:>9.4f}" for n in names)
        + f"{0:>+9.4f}{np.mean(list(base.values())):>9.4f}",
    ]  # fmt: skip
    for label, r in rows.items():
        d = [r[n] - base[n] for n in names]
        lines.append(f"{label:<{width}}" + "".join(f"{x:>+9.4f}" for x in d)
                     + f"{min(d):>+9.4f}{np.mean([r[n] for n in names]):>9.4f}")  # fmt: skip
    return lines


def nested_lines(
    design: Design, chosen: Mapping[str, tuple[str, F64]], resamples: int
) -> list[str]:
    """Per held-out family: the setting chosen without it (its label) and its APGR there beside
    length's, with a 95 % paired bootstrap interval of the gain; then the mean and the worst."""
    base = length_apgr(design)
    length = design.x[:, design.length_col]
    lines = ["nested (setting chosen without the family):"]
    gains: list[float] = []
    values: list[float] = []
    for f, (label, s) in chosen.items():
        rows = design.units == f
        a = family_score(design, s, f)
        gains.append(a - base[f])
        values.append(a)
        ci = (
            "; 95% " + apgr_delta_interval(s[rows], length[rows], design.weak[rows],
                                           design.strong[rows], resamples).format()
            if resamples > 0 else ""
        )  # fmt: skip
        lines.append(f"  {f:<15} {label}: {a:.4f} (length {base[f]:.4f}, {a - base[f]:+.4f}{ci})")
    lines.append(f"  mean {np.mean(values):.4f} (length {np.mean(list(base.values())):.4f}), "
                 f"worst {min(gains):+.4f}")  # fmt: skip
    return lines
