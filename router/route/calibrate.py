"""Pick the score threshold that sends a target share of traffic to the hosted tier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from router.route.share import quantile_threshold


@dataclass(frozen=True, slots=True)
class Calibration:
    """The threshold for a target strong share, and what it achieves on the sample."""

    threshold: float
    target_strong_share: float
    achieved_strong_share: float
    """Share of the sample scoring at or above ``threshold`` (ties can push it above target)."""
    prompts: int
    quantiles: dict[str, float]
    """Score quantiles of the sample (p10 … p90), to see how spread the scores are."""

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly, rounded."""
        return {
            "threshold": round(self.threshold, 6),
            "target_strong_share": self.target_strong_share,
            "achieved_strong_share": round(self.achieved_strong_share, 4),
            "prompts": self.prompts,
            "quantiles": {k: round(v, 4) for k, v in self.quantiles.items()},
        }


def calibrate(scores: Sequence[float], target_strong_share: float) -> Calibration:
    """The threshold whose ``score >= threshold`` rule sends ``target_strong_share`` upward."""
    arr = np.asarray(scores, dtype=np.float64)
    t = quantile_threshold(arr, target_strong_share)
    qs = {f"p{q}": float(np.quantile(arr, q / 100)) for q in (10, 25, 50, 75, 90)}
    return Calibration(
        threshold=t,
        target_strong_share=target_strong_share,
        achieved_strong_share=float((arr >= t).mean()),
        prompts=int(arr.size),
        quantiles=qs,
    )
