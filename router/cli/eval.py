"""``router eval``: the router against prompt length, leave one family out or on one file.

- ``router eval [--data DIR|FILE...]`` (no data: ``../shared/data/router``; a directory or
  several files): **leave-one-family-out**. Each family (knowledge, chat, instruction, math,
  code-reasoning, code-writing, science, commonsense, ...) is scored by heads trained, the way
  ``router train`` trains the shipped head, on the other families only: APGR and CPT(50%) per
  held-out family beside prompt length, and the nested numbers (the weight choice redone
  without the family). This is the number that predicts unseen traffic.
- ``router eval --data FILE.jsonl`` (one file): the shipped (or ``--model``) head on that file,
  beside random routing, prompt length, always-weak and always-strong; ``--plot`` writes quality
  against strong-call share as a self-contained HTML page.

``--json`` prints the same numbers as JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import orjson

from router.classify.corpus import load_corpus, parse_pair_overrides
from router.classify.dataset import DEFAULT_STRONG, DEFAULT_WEAK, file_sha256, load_outcomes
from router.classify.design import TrainConfig, corpus_design, encode_outcomes
from router.classify.encoder import Encoder, EncoderUnavailable
from router.classify.head import read_metadata
from router.classify.trained import shipped_model_dir
from router.classify.validate import gain_intervals, validate
from router.cli.score import add_model_args, load_scorer
from router.lab.evaluate import evaluate_scores, format_lofo, format_report, write_plot

DEFAULT_DATA = Path("../shared/data/router")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``router eval``."""
    p = sub.add_parser("eval", help="evaluate the classifier on labelled outcomes")
    p.add_argument("--data", type=Path, nargs="*", default=[], metavar="DIR|FILE.jsonl",
                   help=f"default: leave-one-family-out on {DEFAULT_DATA}")  # fmt: skip
    p.add_argument("--lofo", action="store_true", help="leave one family out even for one file")
    p.add_argument("--weak-model", help=f"default {DEFAULT_WEAK} (--adapt: the file's first)")
    p.add_argument("--strong-model", help=f"default {DEFAULT_STRONG} (--adapt: its second)")
    p.add_argument("--pair", action="append", default=[], metavar="FILE=WEAK,STRONG")
    p.add_argument("--no-nested", action="store_true", help="skip the nested validation")
    p.add_argument("--embeddings-cache", type=Path, help=".npz of embeddings to reuse/write")
    p.add_argument(
        "--resamples", type=int, default=1000, metavar="N", help="paired bootstrap resamples for "
        "the 95%% interval of each gain over prompt length (0: no intervals)"
    )  # fmt: skip
    p.add_argument(
        "--adapt", type=int, metavar="K", help="one file: replay it, learn from K labels (see "
        "router learn) and print APGR on the rest before and after"
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="--adapt: replay order and slices")
    p.add_argument(
        "--sure-lead", action="store_true", help="--adapt: the guard also needs the 95%% "
        "interval of the held-out lead above 0 (learning.require_sure_lead)"
    )  # fmt: skip
    p.add_argument("--plot", type=Path, help="one file: write the quality curve here (.html)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    add_model_args(p)
    p.set_defaults(func=eval_cmd)


def eval_cmd(args: argparse.Namespace) -> int:
    """Leave one family out over several files, or score one file with a trained head."""
    data: list[Path] = list(args.data) or [DEFAULT_DATA]
    missing = [p for p in data if not p.exists()]
    if missing:
        print(f"error: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    if args.resamples < 0:
        print("error: --resamples must be 0 or more", file=sys.stderr)
        return 2
    if args.adapt is not None:
        if len(data) != 1 or data[0].is_dir():
            print("error: --adapt replays one labelled file: --data FILE.jsonl", file=sys.stderr)
            return 2
        from router.cli.adapt_eval import adapt_cmd

        args.data = data[0]
        return adapt_cmd(args)
    if args.lofo or len(data) > 1 or data[0].is_dir():
        return lofo_cmd(args, data)
    return file_cmd(args, data[0])


def lofo_cmd(args: argparse.Namespace, data: list[Path]) -> int:
    """Print the leave-one-family-out table (training as ``router train`` does)."""
    meta = read_metadata(args.model or shipped_model_dir())
    budget = meta.get("encoder_max_tokens")
    try:
        corpus = load_corpus(
            data,
            parse_pair_overrides(args.pair),
            (args.weak_model or DEFAULT_WEAK, args.strong_model or DEFAULT_STRONG),
        )
        encoder = Encoder.load(
            model_dir=args.encoder_dir,
            device=args.device,
            runtime=args.runtime,
            max_tokens=int(budget) if isinstance(budget, int) else 48,
        )
        emb, tokens = encode_outcomes(encoder, corpus.outcomes, args.embeddings_cache)
        design = corpus_design(corpus, emb, tokens)
        result = validate(design, TrainConfig(nested=not args.no_nested))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EncoderUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = {
        "data": [p.name for p in corpus.paths],
        "pairs": {
            p.file: {"weak": p.weak, "strong": p.strong, "reason": p.reason} for p in corpus.pairs
        },
        "encoder_max_tokens": encoder.max_tokens,
        **result.as_dict(),
    }
    if args.resamples > 0:
        families = out["families"]
        assert isinstance(families, dict)
        for fam, entry in gain_intervals(design, result, args.resamples).items():
            families[fam]["gain_over_length"] = {k: v.as_dict() for k, v in entry.items()}
    if args.json:
        print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
    else:
        for p in corpus.pairs:
            print(f"{p.file}: {p.weak} vs {p.strong} ({p.reason})")
        print(format_lofo(out))
    return 0


def file_cmd(args: argparse.Namespace, path: Path) -> int:
    """Score every prompt of one file with the trained head and compare with the baselines."""
    try:
        weak, strong = args.weak_model or DEFAULT_WEAK, args.strong_model or DEFAULT_STRONG
        data = load_outcomes([path], weak, strong)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scorer = load_scorer(args)
    scores: list[float] = []
    tokens: list[int] = []
    for start in range(0, len(data), args.batch_size):
        batch = data.prompts[start : start + args.batch_size]
        scores += [s.score for s in scorer.score_prompts(batch)]
        tokens += scorer.encoder.token_ids(batch)[1]
    report = evaluate_scores(data, np.asarray(scores), np.asarray(tokens), args.resamples)
    meta = read_metadata(args.model or shipped_model_dir())
    trained_on = {d.get("sha256") for d in meta.get("data", []) if isinstance(d, dict)}  # type: ignore[attr-defined]
    in_training = file_sha256(path) in trained_on
    if args.json:
        out = {"data": str(path), "in_training_data": in_training, **report.as_dict()}
        print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
    else:
        print(format_report(f"{path.name} ({scorer.source})", report))
        if in_training:
            print(
                "  note: the model was trained on this file, so these numbers are in-sample;"
                " `router eval` (leave one family out) gives the held-out numbers."
            )
    if args.plot:
        write_plot(args.plot, f"{path.name}: quality vs strong share", report)
        print(f"  plot: {args.plot}", file=sys.stderr)
    return 0
