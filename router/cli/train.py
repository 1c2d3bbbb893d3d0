"""``router train --data FILE.jsonl... --out DIR``: fit the classifier head on routing outcomes.

``--weak-model`` and ``--strong-model`` pick the two models whose outcomes define the label
(strong minus weak). Prompts are embedded with the serving encoder at ``--max-tokens``; an
``--embeddings-cache`` file skips re-encoding on later runs (or reuses GPU-computed embeddings).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from router.classify.dataset import DEFAULT_STRONG, DEFAULT_WEAK
from router.classify.encoder import Encoder, EncoderUnavailable
from router.classify.train import TrainConfig, train_model
from router.classify.trained import DEFAULT_MAX_TOKENS
from router.observability.feedback_rows import ledger_training_data


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``router train``."""
    p = sub.add_parser("train", help="train the complexity classifier's head")
    p.add_argument("--data", type=Path, nargs="*", default=[], metavar="FILE.jsonl")
    p.add_argument("--from-ledger", action="store_true", help="add rows from stored feedback")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--weak-model", default=DEFAULT_WEAK, help="the local/cheap model")
    p.add_argument("--strong-model", default=DEFAULT_STRONG, help="the hosted/strong model")
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="encoder budget")
    p.add_argument("--encoder-dir", type=Path, help="a BERT encoder directory (default MiniLM)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--runtime", default="auto", choices=("auto", "torch", "onnx"))
    p.add_argument("--alpha", type=float, default=TrainConfig().alpha, help="ridge penalty")
    p.add_argument("--length-weight", type=float, default=TrainConfig().length_weight)
    p.add_argument("--structure-weight", type=float, default=TrainConfig().structure_weight)
    p.add_argument("--folds", type=int, default=TrainConfig().folds)
    p.add_argument("--embeddings-cache", type=Path, help=".npz of embeddings to reuse/write")
    p.add_argument("--plots", type=Path, help="directory for held-out quality plots (HTML)")
    p.set_defaults(func=train_cmd)


def train_cmd(args: argparse.Namespace) -> int:
    """Train, validate by held-out subject, write the model; print the held-out metrics."""
    data = ledger_training_data(args)  # --from-ledger: rows from feedback (observability)
    if data is None:
        return 2
    args.data = data
    missing = [p for p in args.data if not p.is_file()]
    if missing:
        print(f"error: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    try:
        encoder = Encoder.load(
            model_dir=args.encoder_dir,
            device=args.device,
            runtime=args.runtime,
            max_tokens=args.max_tokens,
        )
    except EncoderUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cfg = TrainConfig(
        alpha=args.alpha,
        length_weight=args.length_weight,
        structure_weight=args.structure_weight,
        folds=args.folds,
    )
    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), transient=False) as bar:
        task = bar.add_task("encoding prompts", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            meta = train_model(
                args.data,
                args.out,
                encoder,
                args.weak_model,
                args.strong_model,
                cfg,
                cache=args.embeddings_cache,
                progress=progress,
                plots_dir=args.plots,
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    validation = meta["validation"]
    assert isinstance(validation, dict)
    metrics = validation["metrics"]
    assert isinstance(metrics, dict)
    print(f"wrote {args.out} ({meta['source']}); held-out validation:")
    for name, m in metrics.items():
        r, b = m["router"], m["prompt_length"]
        print(
            f"  {name}: APGR {r['apgr']:.3f} CPT(50%) {r['cpt50']:.1%} CPT(80%) {r['cpt80']:.1%}"
            f"  (prompt length: APGR {b['apgr']:.3f})"
        )
    return 0
