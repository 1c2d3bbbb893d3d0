"""An item-response-smoothed gain as the learned part's target (lab tooling, not served).

Run ``python -m router.lab.irt --data ../shared/data/router --embeddings-cache E.npz``.

A row's training target is normally the strong model's gain over the weak one on that prompt:
one binary outcome minus another, mostly ties. Five of the six files score 11 to 56 models per
prompt, so the gain can be denoised with a two-parameter item-response model fitted per file:

    P(model m answers prompt i well) = sigmoid(a_i · (θ_m − b_i))

(``θ_m`` the model's ability, ``b_i`` the prompt's difficulty, ``a_i > 0`` how sharply it
separates models; soft outcomes in [0, 1] for judged files; Gaussian priors θ ~ N(0, 1),
b ~ N(0, 2²), log a ~ N(0, 0.5²); full-batch Adam). The smoothed gain of the file's pair is
``sigmoid(a_i(θ_strong − b_i)) − sigmoid(a_i(θ_weak − b_i))``: largest for prompts whose
difficulty lies between the two models' abilities, which the pair-free difficulty (a monotone
"share of models that miss") cannot express. Files with fewer than three models (MMLU) keep
the raw gain. The target mixes ``mix`` of the smoothed gain with the raw one; everything else
is the candidates table's leave-one-family-out ridge (:mod:`router.lab.candidates`), and the
APGR is always scored on the real outcomes of the file's pair.

``--residual`` trains on another target instead: the standardised gain minus its within-family
regression on log tokens (what length leaves unexplained), so that the learned part only has to
add to length rather than relearn it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from router.classify.corpus import MIN_MODELS_FOR_DIFFICULTY, Corpus, load_corpus
from router.classify.dataset import read_rows, rescale_outcome
from router.classify.design import (
    Design,
    Learned,
    TrainConfig,
    corpus_design,
    encode_outcomes,
)
from router.classify.encoder import Encoder
from router.classify.lofo import F64, family_apgr
from router.classify.validate import all_stats, held_out_parts
from router.lab.candidates import Row, format_rows

LEARNED = tuple(
    Learned(0.0, emb, alpha, demean)
    for emb in (True, False)
    for alpha in (1e2, 1e4)
    for demean in (True, False)
)


@dataclass(frozen=True, slots=True)
class ItemFit:
    """A fitted two-parameter item-response model."""

    ability: F64
    """Per model (column)."""
    difficulty: F64
    """Per prompt (row)."""
    discrimination: F64
    """Per prompt (row), positive."""

    def p_good(self, model: int) -> F64:
        """Probability that ``model`` answers each prompt well."""
        out: F64 = _sigmoid(self.discrimination * (self.ability[model] - self.difficulty))
        return out


def _sigmoid(x: F64) -> F64:
    out: F64 = 1.0 / (1.0 + np.exp(-x))
    return out


def fit_items(outcomes: F64, observed: F64, steps: int = 1500, lr: float = 0.05) -> ItemFit:
    """Fit the model to ``outcomes[i, m]`` in [0, 1] where ``observed[i, m]`` is 1 (MAP,
    full-batch Adam on the Bernoulli log-likelihood plus the priors)."""
    n, m = outcomes.shape
    params = [np.zeros(m), np.zeros(n), np.zeros(n)]  # ability, difficulty, log discrimination
    first = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    for t in range(1, steps + 1):
        ability, difficulty, log_a = params
        a = np.exp(log_a)
        gap = ability[None, :] - difficulty[:, None]
        resid = (_sigmoid(a[:, None] * gap) - outcomes) * observed  # d(-loglik)/d(logit)
        grads = (
            (resid * a[:, None]).sum(0) + ability,
            -(resid * a[:, None]).sum(1) + difficulty / 4.0,
            (resid * gap).sum(1) * a + log_a / 0.25,
        )
        for k, g in enumerate(grads):
            first[k] = 0.9 * first[k] + 0.1 * g
            second[k] = 0.999 * second[k] + 0.001 * g * g
            step = (first[k] / (1 - 0.9**t)) / (np.sqrt(second[k] / (1 - 0.999**t)) + 1e-8)
            params[k] = params[k] - lr * step
    return ItemFit(params[0], params[1], np.exp(params[2]))


def smoothed_gains(corpus: Corpus) -> F64:
    """Per corpus row, the item-response gain of its file's pair; NaN where the file scores
    fewer than three models."""
    out = np.full(len(corpus), np.nan)
    for k, path in enumerate(corpus.paths):
        rows = np.flatnonzero(corpus.file_index == k)
        by_id = {f"{path.stem}::{r.get('id')}": r for r in read_rows(path)}
        models = sorted({m for r in by_id.values() for m in r.get("scores") or {}})
        if len(models) < MIN_MODELS_FOR_DIFFICULTY or not len(rows):
            continue
        col = {name: j for j, name in enumerate(models)}
        outcomes = np.zeros((len(rows), len(models)))
        observed = np.zeros_like(outcomes)
        for r, i in enumerate(rows):
            record = by_id[corpus.outcomes.ids[i]]
            scale = str(record.get("scale", "binary"))
            for name, value in record["scores"].items():
                outcomes[r, col[name]] = rescale_outcome(float(value), scale)
                observed[r, col[name]] = 1.0
        fit = fit_items(outcomes, observed)
        pair = corpus.pairs[k]
        out[rows] = fit.p_good(col[pair.strong]) - fit.p_good(col[pair.weak])
    return out


def target_design(design: Design, smoothed: F64, mix: float) -> Design:
    """``design`` whose gain (strong − weak) is ``mix`` smoothed and ``1 − mix`` raw; for
    fitting only (APGR must be scored on ``design`` itself)."""
    raw = design.strong - design.weak
    gain = np.where(np.isnan(smoothed), raw, (1 - mix) * raw + mix * np.nan_to_num(smoothed))
    return replace(design, weak=np.zeros(len(gain)), strong=gain)


def residual_gains(design: Design) -> F64:
    """Per row, its family's standardised gain minus that gain's least-squares fit on the
    standardised log token count (within the family)."""
    gain = design.strong - design.weak
    length = design.x[:, design.length_col]
    out = np.zeros(len(gain))
    for u in design.names():
        rows = design.units == u
        y = _standard(gain[rows])
        x = _standard(length[rows])
        out[rows] = y - float((y * x).mean()) * x
    return out


def _standard(v: F64) -> F64:
    sd = float(v.std())
    out: F64 = (v - v.mean()) / (sd if sd > 1e-12 else 1.0)
    return out


def irt_rows(
    design: Design,
    smoothed: F64,
    mixes: Sequence[float],
    lambdas: Sequence[float],
    label: str = "smoothed gain",
) -> list[Row]:
    """Per-family APGR of length, the ``smoothed`` target itself (reads labels) and every
    learned setting fitted on it (``mix`` of it, the rest the raw gain), alone and with
    length."""
    names = design.names()

    def fam(score: F64) -> dict[str, float]:
        return family_apgr(score, design.units, design.weak, design.strong, names)

    raw = design.strong - design.weak
    rows: list[Row] = [("prompt length (log tokens)", fam(design.x[:, design.length_col]))]
    labels = np.where(np.isnan(smoothed), raw, np.nan_to_num(smoothed))
    rows.append((f"ref: {label} (reads labels)", fam(labels)))
    cfg = TrainConfig(learned=LEARNED)
    for mix in mixes:
        fitted = target_design(design, smoothed, mix)
        for key, comp in held_out_parts(fitted, cfg, all_stats(fitted, cfg), names).items():
            rows.append((f"mix {mix:g}: {key}", fam(comp.learned)))
            for lam in lambdas:
                rows.append((f"  + length, λ {lam:g}", fam(comp.combine(lam, 0.0))))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table."""
    p = argparse.ArgumentParser(prog="python -m router.lab.irt", description=__doc__)
    p.add_argument("--data", type=Path, nargs="+", default=[Path("../shared/data/router")])
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--embeddings-cache", type=Path)
    p.add_argument("--mix", type=float, nargs="+", default=[1.0, 0.5])
    p.add_argument("--lambdas", type=float, nargs="+", default=[0.05, 0.1, 0.25, 0.5, 1.0])
    p.add_argument("--residual", action="store_true", help="the residual-after-length target")
    args = p.parse_args(argv)
    corpus = load_corpus(args.data)
    encoder = Encoder.load(device="cpu", runtime="onnx", max_tokens=args.max_tokens)
    emb, tokens = encode_outcomes(encoder, corpus.outcomes, args.embeddings_cache)
    design = corpus_design(corpus, emb, tokens)
    if args.residual:
        rows = irt_rows(design, residual_gains(design), [1.0], args.lambdas, "residual")
        print(format_rows(rows))
        return 0
    smoothed = smoothed_gains(corpus)
    for k, path in enumerate(corpus.paths):
        rows = corpus.file_index == k
        if not np.isnan(smoothed[rows]).any():
            raw = design.strong[rows] - design.weak[rows]
            r = float(np.corrcoef(raw, smoothed[rows])[0, 1])
            print(f"{path.stem}: correlation of the raw and the smoothed gain {r:.3f}")
    print(format_rows(irt_rows(design, smoothed, args.mix, args.lambdas)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
