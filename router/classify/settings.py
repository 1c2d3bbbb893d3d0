"""Policy settings for the complexity classifier (the ``classifier:`` section)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class ClassifierSettings(BaseModel):
    """Which classifier scores requests for ``auto`` routes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["heuristic"] = "heuristic"
