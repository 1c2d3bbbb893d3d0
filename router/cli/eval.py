"""``router eval --data FILE.jsonl [--model DIR]``: the router against the baselines.

Prints APGR, CPT(50%) and CPT(80%) of the trained classifier beside random routing, prompt
length, always-weak and always-strong, and writes quality against strong-call share as a
self-contained HTML page (``--plot``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import orjson

from router.classify.dataset import DEFAULT_STRONG, DEFAULT_WEAK, file_sha256, load_outcomes
from router.classify.evaluate import evaluate_scores, format_report, write_plot
from router.classify.head import read_metadata
from router.classify.trained import shipped_model_dir
from router.cli.score import add_model_args, load_scorer


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``router eval``."""
    p = sub.add_parser("eval", help="evaluate the classifier on labelled outcomes")
    p.add_argument("--data", type=Path, required=True, metavar="FILE.jsonl")
    p.add_argument("--weak-model", help=f"default {DEFAULT_WEAK} (--adapt: the file's first)")
    p.add_argument("--strong-model", help=f"default {DEFAULT_STRONG} (--adapt: its second)")
    p.add_argument(
        "--adapt", type=int, metavar="K", help="replay the file, learn from K labels (see "
        "router learn) and print APGR on the rest before and after"
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="--adapt: replay order and slices")
    p.add_argument("--plot", type=Path, help="write the quality curve here (.html)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    add_model_args(p)
    p.set_defaults(func=eval_cmd)


def eval_cmd(args: argparse.Namespace) -> int:
    """Score every prompt of ``--data`` and compare with the baselines."""
    if args.adapt is not None:
        from router.cli.adapt_eval import adapt_cmd

        return adapt_cmd(args)
    weak, strong = args.weak_model or DEFAULT_WEAK, args.strong_model or DEFAULT_STRONG
    try:
        data = load_outcomes([args.data], weak, strong)
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
    report = evaluate_scores(data, np.asarray(scores), np.asarray(tokens))
    meta = read_metadata(args.model or shipped_model_dir())
    trained_on = {d.get("sha256") for d in meta.get("data", []) if isinstance(d, dict)}  # type: ignore[attr-defined]
    in_training = file_sha256(args.data) in trained_on
    if args.json:
        out = {"data": str(args.data), "in_training_data": in_training, **report.as_dict()}
        print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
    else:
        print(format_report(f"{args.data.name} ({scorer.source})", report))
        if in_training:
            print(
                "  note: the model was trained on this file, so these numbers are in-sample;"
                " metadata.json holds the held-out (unseen subject) numbers."
            )
    if args.plot:
        write_plot(args.plot, f"{args.data.name}: quality vs strong share", report)
        print(f"  plot: {args.plot}", file=sys.stderr)
    return 0
