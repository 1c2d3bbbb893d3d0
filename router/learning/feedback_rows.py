"""``router train --from-ledger``: training rows from the feedback stored with the ledger.

Each feedback row that says whether the answer ``needed_strong`` becomes one training row in
the format of ``../shared/data/router`` (``{"id", "source", "prompt", "scores", "scale"}``) plus
``label`` (1: the strong model was needed)::

    needed_strong: true   scores {weak: 0, strong: 1}   gain 1 (send such prompts up)
    needed_strong: false  scores {weak: 1, strong: 1}   gain 0 (the local model was enough)

Thumbs and scores alone are kept for reports but do not make a label. Shadow labels (the judge's
verdicts, :mod:`router.learning.labels`) join them as rows too. The prompt is the
request's ``messages``, which are stored only when the policy sets
``observability.feedback.store_prompts: true``; without it a row has only the prompt's SHA-256
and is skipped (and counted). That is the privacy trade-off: retraining on a deployment's own
traffic needs its prompts kept in Redis for ``retention_days``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from router.observability.feedback import FeedbackStore
from router.redis.client import connect_redis
from router.settings import Settings


@dataclass(slots=True)
class RowStats:
    """What the export found."""

    rows: int = 0
    feedback: int = 0
    unlabelled: int = 0
    """Feedback without ``needed_strong``."""
    without_prompt: int = 0
    """Labelled feedback whose prompt was not stored (``store_prompts`` was off)."""
    by_label: dict[int, int] = field(default_factory=dict)


def training_row(fb: dict[str, str], weak: str, strong: str) -> dict[str, Any] | None:
    """The training row of one stored feedback row; None when it has no label or prompt."""
    needed = fb.get("needed_strong", "")
    messages = fb.get("messages", "")
    if needed not in ("0", "1") or not messages:
        return None
    label = int(needed)
    return {
        "id": f"feedback/{fb.get('tenant', '-')}/{fb['request_id']}",
        "source": f"feedback/{fb.get('model') or 'unknown'}",
        "prompt": orjson.loads(messages),
        "scores": {weak: float(1 - label), strong: 1.0},
        "scale": "binary",
        "label": label,
        "prompt_sha256": fb.get("prompt_sha256", ""),
    }


def build_rows(
    feedback: Iterable[dict[str, str]], weak: str, strong: str
) -> tuple[list[dict[str, Any]], RowStats]:
    """Training rows from ``feedback`` rows, with counts of what was skipped and why."""
    stats = RowStats()
    rows: list[dict[str, Any]] = []
    for fb in feedback:
        stats.feedback += 1
        if fb.get("needed_strong", "") not in ("0", "1"):
            stats.unlabelled += 1
            continue
        row = training_row(fb, weak, strong)
        if row is None:
            stats.without_prompt += 1
            continue
        rows.append(row)
        stats.by_label[row["label"]] = stats.by_label.get(row["label"], 0) + 1
    stats.rows = len(rows)
    return rows, stats


async def read_feedback(
    redis_url: str | None, data_dir: Path | None, since_s: float | None = None
) -> list[dict[str, str]]:
    """Every stored feedback row (``REDIS_URL``, or the embedded server's data directory)."""
    handle = await connect_redis(redis_url, data_dir, share_running=True)
    try:
        store = FeedbackStore(handle.client)
        return [row async for row in store.rows(since_s)]
    finally:
        await handle.aclose()


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    """Write ``rows`` as JSON lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for row in rows:
            out.write(orjson.dumps(row) + b"\n")


def _shadow_rows(settings: Settings, weak: str, strong: str) -> list[dict[str, Any]]:
    """Training rows of the shadow labels (router.learning), with a count on stderr."""
    from router.learning.labels import read_shadow_labels, training_row

    try:
        labels = asyncio.run(read_shadow_labels(settings.redis_url, settings.data_dir))
    except Exception as exc:
        print(f"note: cannot read shadow labels: {exc!r}", file=sys.stderr)
        return []
    rows = [r for r in (training_row(lab, weak, strong) for lab in labels) if r is not None]
    print(
        f"shadow labels: {len(labels)}, {len(rows)} with a stored prompt",
        file=sys.stderr,
    )
    return rows


def ledger_training_data(args: argparse.Namespace) -> list[Path] | None:
    """``args.data`` plus a JSONL of feedback rows when ``--from-ledger`` is given.

    Returns None (after printing why) when there is nothing to train on.
    """
    data: list[Path] = list(args.data or [])
    if not getattr(args, "from_ledger", False):
        if not data:
            print("error: give --data FILE.jsonl... and/or --from-ledger", file=sys.stderr)
            return None
        return data
    settings = Settings.from_env()
    try:
        feedback = asyncio.run(read_feedback(settings.redis_url, settings.data_dir))
    except Exception as exc:
        print(f"error: cannot read feedback from Redis: {exc!r}", file=sys.stderr)
        return None
    rows, stats = build_rows(feedback, args.weak_model, args.strong_model)
    shadow_rows = _shadow_rows(settings, args.weak_model, args.strong_model)
    print(
        f"feedback: {stats.feedback} rows, {stats.rows} labelled with a prompt "
        f"({stats.by_label.get(1, 0)} needed the strong model, {stats.by_label.get(0, 0)} not); "
        f"skipped {stats.unlabelled} without needed_strong and {stats.without_prompt} without "
        "a stored prompt (observability.feedback.store_prompts)",
        file=sys.stderr,
    )
    rows += shadow_rows
    if not rows and not data:
        print("error: no feedback rows to train on", file=sys.stderr)
        return None
    if rows:
        # Outside the model directory (which may be committed): the rows can hold prompts.
        out = Path(tempfile.mkdtemp(prefix="router-feedback-")) / "feedback_rows.jsonl"
        write_rows(rows, out)
        print(f"feedback rows written to {out} (delete it after training)", file=sys.stderr)
        data.append(out)
    return data
