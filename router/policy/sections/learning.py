"""The policy's ``learning:`` section: shadow labels, the judge, their budget, and promotion.

Off by default (``shadow_share: 0``, ``background: false``). Example::

    learning:
      shadow_share: 0.02        # share of score-routed `auto` requests shadowed
      judge: gpt-4o             # default: the route's strongest tier
      max_usd_per_day: 5        # shadow + judge spend, all replicas together (UTC day)
      background: false         # let one replica run `router learn` every interval_s
      min_new_labels: 200

See ``docs/learning.md`` for what each key does.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class LearningSettings(BaseModel):
    """How the gateway learns from its own traffic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shadow_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Share of successful, score-routed requests whose other tier is also asked, in the
    background after the client has its response (0 turns shadowing off)."""
    judge: Annotated[str, Field(min_length=1)] | None = None
    """The model that compares the two answers; default: the route's strongest tier."""
    max_usd_per_day: Annotated[float, Field(ge=0)] = 5.0
    """Cap of shadow and judge spend per UTC day, in US dollars, shared by all replicas."""
    routes: tuple[str, ...] = ()
    """Routes whose requests may be shadowed; empty: every route with a score-chosen tier."""
    max_concurrent: Annotated[int, Field(ge=1, le=256)] = 4
    """Shadow jobs in flight per replica; a sampled request beyond this is not shadowed."""
    shadow_max_tokens: Annotated[int, Field(ge=1, le=32768)] = 1024
    """Output cap of the shadow answer (the client's own cap applies when lower)."""
    judge_max_tokens: Annotated[int, Field(ge=1, le=4096)] = 16
    """Output cap of each judge call (the verdict is a few tokens)."""
    answer_max_chars: Annotated[int, Field(ge=100, le=200_000)] = 8000
    """Each answer is cut to this many characters inside the judge prompt."""
    retention_days: Annotated[float, Field(gt=0, le=3650)] = 90.0
    """How long labels are kept in Redis."""
    min_new_labels: Annotated[int, Field(ge=10)] = 200
    """Labels with a stored prompt needed since the last attempt before a candidate is trained."""
    folds: Annotated[int, Field(ge=2, le=20)] = 5
    """The deployment's labels are split into this many held-out slices to score candidates."""
    min_gain: Annotated[float, Field(ge=0, le=1)] = 0.01
    """A candidate is promoted only if its held-out APGR beats the current head's by this."""
    require_sure_lead: bool = False
    """Also require the 95 % paired bootstrap interval of that held-out lead to lie above 0, so
    that a lead a few hundred noisy labels cannot tell from none is not promoted."""
    label_weight: Annotated[float, Field(gt=0, lt=1)] = 0.5
    """Share of the training weight carried by the deployment's labels when the shipped data
    files are available (``base_data``); the rest goes to the shipped rows."""
    base_data: tuple[str, ...] = ()
    """Labelled JSONL files of the shipped data to train on beside the deployment's labels;
    empty: the current head itself is the prior (see docs/learning.md)."""
    background: bool = False
    """Run the promotion job inside the gateway (one replica at a time, by a Redis lock)."""
    interval_s: Annotated[float, Field(ge=1)] = 3600.0
    """How often the background job looks for enough new labels."""
    head_poll_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    """How often each replica checks the shared store for a newly promoted (or rolled back)
    head."""
