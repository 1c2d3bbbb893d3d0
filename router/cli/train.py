"""``router train --data DIR|FILE.jsonl... --out DIR``: fit the classifier head on routing outcomes.

Every file (or every ``*.jsonl`` of a directory) is read in one run; ``--from-ledger`` feedback
rows join as the deployment's own labelled rows (:func:`router.classify.train.train_head`).
Each file is labelled by a weak/strong pair: ``--pair FILE=WEAK,STRONG``, else the file's
documented default (:data:`router.classify.corpus.FILE_PAIRS`), else ``--weak-model`` /
``--strong-model`` when the file scores both. The head's weights are chosen by
leave-one-family-out validation, which is printed and stored in ``metadata.json``. An
``--embeddings-cache`` file skips re-encoding on later runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from router.classify.corpus import labelled_prompts, load_corpus, parse_pair_overrides
from router.classify.dataset import DEFAULT_STRONG, DEFAULT_WEAK
from router.classify.design import LabelledPrompt, TrainConfig
from router.classify.encoder import Encoder, EncoderUnavailable
from router.classify.lofo import Candidate
from router.classify.train import train_head, write_model
from router.classify.trained import DEFAULT_MAX_TOKENS
from router.lab.evaluate import format_lofo
from router.learning.feedback_rows import ledger_training_data


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``router train``."""
    p = sub.add_parser("train", help="train the complexity classifier's head")
    p.add_argument("--data", type=Path, nargs="*", default=[], metavar="DIR|FILE.jsonl")
    p.add_argument("--from-ledger", action="store_true", help="add rows from stored feedback")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--weak-model", default=DEFAULT_WEAK, help="default pair: the local model")
    p.add_argument("--strong-model", default=DEFAULT_STRONG, help="default pair: the hosted model")
    p.add_argument("--pair", action="append", default=[], metavar="FILE=WEAK,STRONG",
                   help="the pair that labels one file (repeatable)")  # fmt: skip
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="encoder budget")
    p.add_argument("--encoder-dir", type=Path, help="a BERT encoder directory (default MiniLM)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--runtime", default="auto", choices=("auto", "torch", "onnx"))
    p.add_argument("--learned", metavar="KEY", help="fix the learned setting (see metadata)")
    p.add_argument("--lam", type=float, help="fix λ, the learned part's weight (skips the search)")
    p.add_argument("--structure-weight", type=float, help="fix s (with --lam)")
    p.add_argument("--no-nested", action="store_true", help="skip the nested validation")
    p.add_argument("--embeddings-cache", type=Path, help=".npz of embeddings to reuse/write")
    p.set_defaults(func=train_cmd)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` the flags ask for."""
    base = TrainConfig(nested=not args.no_nested)
    if args.lam is None and args.structure_weight is None and args.learned is None:
        return base
    key = args.learned or base.learned[0].key
    if key not in {lc.key for lc in base.learned}:
        raise ValueError(f"--learned {key!r}: one of {', '.join(lc.key for lc in base.learned)}")
    fixed = Candidate(key, args.lam or 0.0, args.structure_weight or 0.0)
    return TrainConfig(fixed=fixed, nested=False)


def train_cmd(args: argparse.Namespace) -> int:
    """Train, validate leave-one-family-out, write the model; print the per-family table."""
    given = list(args.data or [])
    data = ledger_training_data(args)  # --from-ledger: rows from feedback (observability)
    if data is None:
        return 2
    # Feedback rows are the deployment's own labels: extra rows, not one more family.
    ledger = data[len(given) :]
    data = data[: len(given)]
    missing = [p for p in data if not p.exists()]
    if missing:
        print(f"error: no such file: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    try:
        pairs = parse_pair_overrides(args.pair)
        cfg = config_from_args(args)
        encoder = Encoder.load(
            model_dir=args.encoder_dir,
            device=args.device,
            runtime=args.runtime,
            max_tokens=args.max_tokens,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EncoderUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), transient=False) as bar:
        task = bar.add_task("encoding prompts", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        default = (args.weak_model, args.strong_model)
        try:
            extra = [
                LabelledPrompt(prompt, label)
                for path in ledger
                for prompt, label in labelled_prompts(path, *default)
            ]
            corpus = load_corpus(data, pairs, default) if data else None
            trained = train_head(corpus, encoder, extra, cfg, args.embeddings_cache, progress)
            meta = write_model(trained, args.out, default)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(f"wrote {args.out} ({meta['source']})")
    for d in meta["data"]:  # type: ignore[attr-defined]
        print(f"  {d['file']}: {d['rows_used']} rows, {d['weak_model']} vs {d['strong_model']} "
              f"({d['pair_reason']})")  # fmt: skip
    validation = meta.get("validation")
    if isinstance(validation, dict):
        print(format_lofo(validation))
    if extra:
        print(f"  {len(extra)} feedback rows as the deployment's own labels; weights chosen on "
              f"them (out-of-fold APGR {meta.get('extra_rows_out_of_fold_apgr')})")  # fmt: skip
    return 0
