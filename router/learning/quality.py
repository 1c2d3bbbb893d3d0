"""Routing quality from the deployment's own labels, for ``router report`` and the dashboard.

For every label with the routing score it got when served and its prompt's length: APGR of
those scores and of prompt length on the labels (each label's gain ``g`` as outcomes: strong
``(1 + g) / 2``, weak ``(1 - g) / 2``, as in :mod:`router.learning.candidate`), the quality of
routed answers against the strong share at 0 %, 10 %, ..., 100 %, and how sure the head's lead
over length is: a 95 % paired bootstrap interval of head minus length over the newest
:data:`INTERVAL_LABELS` labels (:func:`router.classify.metrics.apgr_delta_interval`,
:data:`RESAMPLES` draws, seeded, so the same labels always give the same interval). The "head"
numbers use the labels scored by the head that scored the newest label (after a promotion,
older labels were scored by another head and are counted under ``all``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from router.classify.metrics import apgr_delta_interval, gap_is_clear, pgr_curve
from router.learning.budget import ShadowBudget
from router.learning.candidate import label_apgr
from router.learning.heads_store import HeadStore
from router.learning.labels import Label, LabelStore
from router.redis import keys as lk

SHARES = tuple(i / 10 for i in range(11))
"""Strong shares of the curve."""
RESAMPLES = 200
"""Bootstrap draws for the head-minus-length interval."""
INTERVAL_LABELS = 10_000
"""The interval is drawn from at most this many of the newest labels: a report is built on
request, in the gateway too, and this bounds its cost (~0.5 s of one core in a worker thread)."""


def _curve(scores: Sequence[float], gain: Sequence[float]) -> list[float]:
    g = np.asarray(gain, dtype=np.float64)
    c = pgr_curve(scores, (1 - g) / 2, (1 + g) / 2)
    return [round(float(v), 4) for v in np.interp(SHARES, c.share, c.quality)]


def summarize(labels: Sequence[Label]) -> dict[str, Any]:
    """Counts, APGR of the serving head and of length, and the quality curve."""
    out: dict[str, Any] = {
        "labels": len(labels),
        "shadow": sum(1 for lab in labels if lab.source == "shadow"),
        "feedback": sum(1 for lab in labels if lab.source == "feedback"),
        "strong_better": sum(1 for lab in labels if lab.gain > 0),
        "with_prompt": sum(1 for lab in labels if lab.messages),
    }
    scored = [lab for lab in labels if lab.score is not None and lab.prompt_tokens is not None]
    newest = next((lab.head for lab in reversed(scored) if lab.head), "")
    by_head = [lab for lab in scored if lab.head == newest] if newest else scored
    out["head"] = newest or None
    out["head_labels"] = len(by_head)
    out["scored_labels"] = len(scored)
    if len(by_head) < 2:
        return out
    gain = [lab.gain for lab in by_head]
    scores = [float(lab.score or 0.0) for lab in by_head]
    tokens = [float(lab.prompt_tokens or 0) for lab in by_head]
    out["head_apgr"] = round(label_apgr(scores, gain), 4)
    out["length_apgr"] = round(label_apgr(tokens, gain), 4)
    if sum(gain) > 0:
        g = np.asarray(gain[-INTERVAL_LABELS:], dtype=np.float64)
        if gap_is_clear(g):
            out["head_minus_length"] = {
                **apgr_delta_interval(
                    scores[-INTERVAL_LABELS:], tokens[-INTERVAL_LABELS:], (1 - g) / 2,
                    (1 + g) / 2, RESAMPLES,
                ).as_dict(),
                "labels": len(g),
            }  # fmt: skip
        out["curve"] = {
            "strong_share": list(SHARES),
            "head": _curve(scores, gain),
            "length": _curve(tokens, gain),
        }
    return out


async def routing_quality(
    redis: Any, since_s: float | None, until_s: float | None
) -> dict[str, Any]:
    """The routing-quality section of a report for ``[since_s, until_s)`` (Unix seconds)."""
    labels = [
        lab for lab in await LabelStore(redis).all(since_s) if until_s is None or lab.ts < until_s
    ]
    out = await asyncio.to_thread(summarize, labels)  # CPU work off the event loop
    heads = HeadStore(redis)
    out["serving_version"] = await heads.current() or "policy"
    out["shadow_spend_today_usd"] = round(await ShadowBudget(redis).spent_usd(), 6)
    raw: dict[str, str] = await redis.hgetall(lk.stats_key())
    out["shadow_today"] = {k: int(v) for k, v in sorted(raw.items())}
    return out
