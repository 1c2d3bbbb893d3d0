"""The policy's ``observability:`` section: drift alerting and the feedback store.

Example::

    observability:
      drift:
        window: 1000        # classifier scores kept in the rolling window
        psi_alert: 0.2      # log an alert line when PSI crosses this
        min_samples: 200    # no PSI alerts before the window holds this many scores
      feedback:
        enabled: true       # index each request so POST /v1/feedback can find it
        store_prompts: false  # keep the prompt text for `router train --from-ledger`
        retention_days: 30
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftSettings(_Strict):
    """How classifier-score drift is measured and when it alerts."""

    window: Annotated[int, Field(ge=10, le=1_000_000)] = 1000
    """Number of most recent classifier scores compared with the training distribution."""
    psi_alert: Annotated[float, Field(gt=0)] = 0.2
    """Population stability index above which ``classifier_drift`` is logged (0.1: watch,
    0.2-0.25: act)."""
    min_samples: Annotated[int, Field(ge=1)] = 200
    """Scores needed in the window before an alert can fire."""
    check_every: Annotated[int, Field(ge=1)] = 50
    """Recompute PSI (and maybe alert) every this many scores."""


class FeedbackSettings(_Strict):
    """What ``POST /v1/feedback`` can attach to, and what is kept for retraining."""

    enabled: bool = True
    """Index every successful request by id (one small Redis hash, batched, off the hot path)."""
    store_prompts: bool = False
    """Also keep the request's messages, so ``router train --from-ledger`` can use them.
    Off by default: prompts may hold personal data. Without it only a SHA-256 of the
    prompt is kept."""
    retention_days: Annotated[float, Field(gt=0, le=3650)] = 30.0
    """How long request index entries and feedback are kept in Redis."""


class ObservabilitySettings(_Strict):
    """The ``observability:`` policy section."""

    drift: DriftSettings = DriftSettings()
    feedback: FeedbackSettings = FeedbackSettings()
