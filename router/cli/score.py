"""``router score --input IN.jsonl --output OUT.jsonl``: the gateway's scores, offline.

Reads ``{"id", "prompt"}`` rows (``prompt`` a string or an OpenAI ``messages`` list; a
``messages`` key works too) and writes ``{"id", "score"}`` rows in the same order. The prompt is
turned into a chat request and scored by exactly the code the gateway runs for ``auto``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from router.classify.dataset import read_rows
from router.classify.inputs import PromptText
from router.classify.trained import Scorer, prompt_from_request
from router.policy.sections.classifier import ClassifierSettings
from router.protocol.chat_request import ChatRequest


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The options that choose the trained model and its encoder (shared by the commands)."""
    p.add_argument("--model", type=Path, help="model directory (default: the shipped model)")
    p.add_argument("--encoder-dir", type=Path, help="a BERT encoder directory (default MiniLM)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--runtime", default="auto", choices=("auto", "torch", "onnx"))
    p.add_argument("--batch-size", type=int, default=64, help="prompts per encoder call")


def load_scorer(args: argparse.Namespace) -> Scorer:
    """A :class:`Scorer` from the ``add_model_args`` options."""
    settings = ClassifierSettings(
        model_dir=str(args.model) if args.model else None,
        encoder_dir=str(args.encoder_dir) if args.encoder_dir else None,
        device=args.device,
        runtime=args.runtime,
        max_batch=args.batch_size,
    )
    return Scorer.load(settings)


def prompt_of_row(row: dict[str, Any]) -> PromptText:
    """The encoder input for a row, built through :class:`ChatRequest` like the gateway does."""
    value = row.get("prompt", row.get("messages"))
    if isinstance(value, str):
        messages: list[dict[str, Any]] = [{"role": "user", "content": value}]
    elif isinstance(value, list):
        messages = value
    else:
        raise ValueError("each row needs a 'prompt' string or a 'messages' list")
    return prompt_from_request(ChatRequest.model_validate({"model": "auto", "messages": messages}))


def score_prompts(scorer: Scorer, prompts: Sequence[PromptText], batch: int) -> Iterator[float]:
    """Scores of ``prompts`` in order, ``batch`` at a time."""
    for start in range(0, len(prompts), batch):
        for s in scorer.score_prompts(prompts[start : start + batch]):
            yield s.score


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``router score``."""
    p = sub.add_parser("score", help="score prompts with the trained classifier")
    p.add_argument("--input", type=Path, required=True, help='JSON lines {"id", "prompt"}')
    p.add_argument("--output", type=Path, required=True, help='JSON lines {"id", "score"}')
    add_model_args(p)
    p.set_defaults(func=score_cmd)


def score_cmd(args: argparse.Namespace) -> int:
    """Write one score per input row, in input order."""
    try:
        rows = list(read_rows(args.input))
        prompts = [prompt_of_row(r) for r in rows]
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scorer = load_scorer(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("wb") as out:
        for row, score in zip(rows, score_prompts(scorer, prompts, args.batch_size), strict=True):
            out.write(orjson.dumps({"id": row.get("id"), "score": score}) + b"\n")
    print(f"scored {len(rows)} prompts with {scorer.source} -> {args.output}", file=sys.stderr)
    return 0
