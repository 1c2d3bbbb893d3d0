"""Build the drift reference histogram from ``router score`` output.

``python -m router.observability.reference SCORES.jsonl --source SOURCE --out FILE`` reads
``{"id", "score"}`` rows (the output of ``router score`` on the training prompts) and writes
quantile bin edges with the share of training scores in each bin. Rebuild it whenever the
shipped classifier is retrained (its ``source`` changes, and scores of another source are not
compared).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def build_reference(scores: Sequence[float], bins: int = 10) -> tuple[list[float], list[float]]:
    """Quantile edges (first 0.0, last 1.0) and the share of ``scores`` in each bin."""
    arr = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    inner = np.unique(np.round(np.quantile(arr, np.linspace(0, 1, bins + 1)[1:-1]), 6))
    edges = [0.0, *[float(x) for x in inner if 0.0 < x < 1.0], 1.0]
    idx = np.searchsorted(np.asarray(edges[1:-1]), arr, side="right")
    counts = np.bincount(idx, minlength=len(edges) - 1)
    shares = [round(float(c) / len(arr), 6) for c in counts]
    return edges, shares


def main(argv: Sequence[str] | None = None) -> int:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m router.observability.reference")
    p.add_argument("scores", type=Path, help='JSON lines {"id", "score"} (router score output)')
    p.add_argument("--source", required=True, help="the classifier's source, e.g. minilm-...")
    p.add_argument("--bins", type=int, default=10)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    scores = [float(json.loads(line)["score"]) for line in args.scores.open() if line.strip()]
    if not scores:
        print("error: no scores", file=sys.stderr)
        return 2
    edges, shares = build_reference(scores, args.bins)
    doc = {
        "source": args.source,
        "rows": len(scores),
        "computed_from": "router score on the training prompts (../shared/data/router/*.jsonl)",
        "edges": edges,
        "proportions": shares,
    }
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
