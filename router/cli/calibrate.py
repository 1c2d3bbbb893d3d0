"""``router calibrate --prompts FILE.jsonl --target-strong-share 0.3``: the matching threshold.

Scores a sample of real traffic (``{"prompt"}`` or ``{"messages"}`` rows) with the trained
classifier and prints the threshold above which that share of it falls, for the route's strongest
tier's ``min_score``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from router.classify.dataset import read_rows
from router.cli.score import add_model_args, load_scorer, prompt_of_row, score_prompts
from router.route.calibrate import calibrate


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``router calibrate``."""
    p = sub.add_parser("calibrate", help="threshold for a target share of strong-model calls")
    p.add_argument("--prompts", type=Path, required=True, metavar="FILE.jsonl")
    p.add_argument("--target-strong-share", type=float, required=True, metavar="SHARE")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_model_args(p)
    p.set_defaults(func=calibrate_cmd)


def calibrate_cmd(args: argparse.Namespace) -> int:
    """Print the threshold (exit 2 on bad input)."""
    share = args.target_strong_share
    if not 0.0 < share < 1.0:
        print("error: --target-strong-share must be between 0 and 1", file=sys.stderr)
        return 2
    try:
        prompts = [prompt_of_row(r) for r in read_rows(args.prompts)]
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not prompts:
        print("error: no prompts", file=sys.stderr)
        return 2
    scorer = load_scorer(args)
    result = calibrate(list(score_prompts(scorer, prompts, args.batch_size)), share)
    if args.json:
        print(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(
            f"threshold {result.threshold:.4f}: {result.achieved_strong_share:.1%} of "
            f"{result.prompts} prompts score at or above it (target {share:.1%})"
        )
        print("score quantiles: " + ", ".join(f"{k} {v:.3f}" for k, v in result.quantiles.items()))
    return 0
