"""Labels of the deployment's own traffic: shadow verdicts and explicit feedback, one shape.

A :class:`Label` says whether a request needed the strong tier (``label`` 1) or not (0), with
what is needed to train on it (the prompt, only when ``observability.feedback.store_prompts``
allowed keeping it) and to report on it without retraining (the routing score it got, the head
that gave it, and the prompt's length for the length baseline).

Shadow labels live in the stream ``rl:{learn}:labels``; explicit ``/v1/feedback`` labels stay in
the feedback store (:mod:`router.observability.feedback`) and are read from there.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from router.observability.feedback import FeedbackStore
from router.redis import keys as lk


@dataclass(frozen=True, slots=True)
class Label:
    """One labelled request."""

    request_id: str
    source: str
    """``shadow`` (judged) or ``feedback`` (``needed_strong`` from ``/v1/feedback``)."""
    label: int
    """1: the strong tier was clearly better (needed); 0: it was not."""
    ts: float
    score: float | None = None
    """The routing score the request got when it was served."""
    head: str = ""
    """The classifier (``source``) that gave that score."""
    prompt_tokens: int | None = None
    """The prompt's length (about 4 characters a token), for the length baseline."""
    messages: list[dict[str, str]] | None = None
    """The request's messages, only when the policy allowed storing prompts."""
    extra: dict[str, str] = field(default_factory=dict)
    """Everything else stored with it (verdicts, models, route, tenant)."""

    @property
    def gain(self) -> float:
        """The strong tier's gain in [-1, 1]: a judged label's ``2 * strong_score - 1`` (1 won
        both orders, 0 a tie or a split, -1 lost both), else the label itself (feedback's
        ``needed_strong``: 1 needed, 0 the local answer was enough)."""
        if self.extra.get("strong_score"):
            return 2.0 * float(self.extra["strong_score"]) - 1.0
        return float(self.label)

    def to_fields(self) -> dict[str, str]:
        """Stream entry fields."""
        out = {
            **self.extra,
            "request_id": self.request_id,
            "source": self.source,
            "label": str(self.label),
            "ts": repr(self.ts),
            "score": "" if self.score is None else repr(self.score),
            "head": self.head,
            "prompt_tokens": "" if self.prompt_tokens is None else str(self.prompt_tokens),
        }
        if self.messages is not None:
            out["messages"] = orjson.dumps(self.messages).decode()
        return out

    @classmethod
    def from_fields(cls, f: dict[str, str]) -> Label:
        """Parse a stream entry written by :meth:`to_fields`."""
        known = {"request_id", "source", "label", "ts", "score", "head", "prompt_tokens"}
        messages = orjson.loads(f["messages"]) if f.get("messages") else None
        return cls(
            request_id=f.get("request_id", ""),
            source=f.get("source", "shadow"),
            label=int(f.get("label", "0")),
            ts=float(f.get("ts") or 0.0),
            score=float(f["score"]) if f.get("score") else None,
            head=f.get("head", ""),
            prompt_tokens=int(f["prompt_tokens"]) if f.get("prompt_tokens") else None,
            messages=messages,
            extra={k: v for k, v in f.items() if k not in known and k != "messages"},
        )


def messages_tokens(messages: Iterable[dict[str, Any]]) -> int:
    """About 4 characters a token over every message's text (the gateway's estimate)."""
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    return max(1, chars // 4)


def label_of_feedback(row: dict[str, str]) -> Label | None:
    """The label of one stored feedback row; None without ``needed_strong``."""
    needed = row.get("needed_strong", "")
    if needed not in ("0", "1"):
        return None
    messages = orjson.loads(row["messages"]) if row.get("messages") else None
    return Label(
        request_id=row.get("request_id", ""),
        source="feedback",
        label=int(needed),
        ts=float(row.get("feedback_ts") or row.get("ts") or 0.0),
        score=float(row["score"]) if row.get("score") else None,
        head=row.get("classifier", ""),
        prompt_tokens=messages_tokens(messages) if messages else None,
        messages=messages,
        extra={"tenant": row.get("tenant", ""), "model": row.get("model", "")},
    )


class LabelStore:
    """Append shadow labels; read them, and the feedback labels, back."""

    def __init__(self, redis: Any) -> None:
        """Use ``redis`` (a ``decode_responses`` client)."""
        self.redis = redis

    async def add(self, label: Label, retention_s: float) -> None:
        """Append ``label``, dropping entries older than ``retention_s`` seconds."""
        min_id = f"{int((time.time() - retention_s) * 1000)}-0"
        await self.redis.xadd(lk.labels_key(), label.to_fields(), minid=min_id, approximate=True)

    async def shadow(self, since_s: float | None = None, page: int = 1000) -> list[Label]:
        """Every stored shadow label (oldest first), from ``since_s`` (Unix seconds)."""
        start = "-" if since_s is None else f"{int(since_s * 1000)}-0"
        out: list[Label] = []
        while True:
            batch = await self.redis.xrange(lk.labels_key(), start, "+", count=page)
            out += [Label.from_fields(fields) for _id, fields in batch]
            if len(batch) < page:
                return out
            start = "(" + batch[-1][0]

    async def feedback(self, since_s: float | None = None) -> list[Label]:
        """Every ``/v1/feedback`` row with ``needed_strong``, as labels."""
        store = FeedbackStore(self.redis)
        out: list[Label] = []
        async for row in store.rows(since_s):
            label = label_of_feedback(row)
            if label is not None:
                out.append(label)
        return out

    async def all(self, since_s: float | None = None) -> list[Label]:
        """Shadow and feedback labels together, oldest first; feedback wins on the same id."""
        shadow = await self.shadow(since_s)
        feedback = await self.feedback(since_s)
        explicit = {lab.request_id for lab in feedback}
        merged = [lab for lab in shadow if lab.request_id not in explicit] + feedback
        return sorted(merged, key=lambda lab: lab.ts)


def training_row(label: Label, weak: str, strong: str) -> dict[str, Any] | None:
    """A shadow label as a row of ``../shared/data/router``'s format; None without a prompt.

    The judge's verdict becomes the two outcomes: strong ``(1 + gain) / 2``, weak
    ``(1 - gain) / 2`` (won both orders: 1 and 0; a tie or a split: 0.5 each).
    """
    if not label.messages:
        return None
    g = label.gain
    return {
        "id": f"shadow/{label.extra.get('tenant', '-')}/{label.request_id}",
        "source": f"shadow/{label.extra.get('route') or 'auto'}",
        "prompt": label.messages,
        "scores": {weak: (1.0 - g) / 2, strong: (1.0 + g) / 2},
        "scale": "binary",
        "label": label.label,
    }


async def read_shadow_labels(redis_url: str | None, data_dir: Any) -> list[Label]:
    """Every stored shadow label (``REDIS_URL``, or the embedded server's data directory)."""
    from router.redis.client import connect_redis

    # share_running: next to a gateway on the same data directory, read its embedded Redis.
    handle = await connect_redis(redis_url, data_dir, share_running=True)
    try:
        return await LabelStore(handle.client).shadow()
    finally:
        await handle.aclose()
