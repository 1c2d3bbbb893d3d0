"""``router eval --adapt K --data FILE [--json]``: the offline adaptation bar.

Replays ``FILE`` as traffic, takes the first ``K`` rows' labels as the judge's verdicts, runs the
candidate fit and guard of ``router learn`` (:mod:`router.learning.adapt`), and prints APGR on
the rest of the file before and after, beside prompt length. The weak and strong models are the
file's first two unless ``--weak-model``/``--strong-model`` say otherwise.
"""

from __future__ import annotations

import argparse
import sys

import orjson

from router.cli.score import load_scorer
from router.learning.adapt import AdaptResult, first_two_models, run_adapt
from router.learning.candidate import CandidateConfig


def format_adapt(r: AdaptResult) -> str:
    """The result for people."""
    g = r.guard
    lines = [
        f"{r.file}: {r.weak_model} (weak) vs {r.strong_model} (strong)",
        f"  labelled (replayed) rows: {r.k}"
        + (f" (asked for {r.k_requested}; the file has too few)" if r.k < r.k_requested else ""),
        f"  guard on held-out labels: candidate {g.candidate_apgr:.3f}, current "
        f"{g.current_apgr:.3f}, length {g.length_apgr:.3f} -> "
        + ("promoted" if g.promoted else f"refused ({g.reason})")
        + (f"; candidate - current {g.lead.format()} (95%)" if g.lead else ""),
        f"  APGR on the other {r.n_rest} rows:",
        f"    {'before':<14}{r.before.apgr:.3f}",
        f"    {'after':<14}{r.after.apgr:.3f}",
        f"    {'prompt length':<14}{r.length.apgr:.3f}",
        f"  after - before: {r.after_minus_before.format()}, after - length: "
        f"{r.after_minus_length.format()} (95% paired bootstrap over the rest's prompts)",
    ]
    return "\n".join(lines)


def adapt_cmd(args: argparse.Namespace) -> int:
    """Run the bar for ``args.data``; print text or JSON."""
    try:
        first = first_two_models(args.data)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    weak = args.weak_model or first[0]
    strong = args.strong_model or first[1]
    scorer = load_scorer(args)
    try:
        config = CandidateConfig(seed=args.seed, sure_lead=args.sure_lead)
        result = run_adapt(args.data, args.adapt, scorer, weak, strong, config, seed=args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        scorer.encoder.close()
    if args.json:
        print(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(format_adapt(result))
    return 0
