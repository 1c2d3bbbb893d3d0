"""The ``POST /v1/feedback`` body: a rating of one earlier request."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
"""The request ids the gateway hands out (``x-request-id``), and so the only ones it can rate."""


class FeedbackBody(BaseModel):
    """The request body (strict: ``"5"`` is not a number, ``"yes"`` is not a boolean)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    request_id: Annotated[str, Field(pattern=REQUEST_ID_PATTERN)]
    score: float | None = None
    thumbs: Literal["up", "down"] | None = None
    needed_strong: bool | None = None
    comment: Annotated[str, Field(max_length=4000)] | None = None

    @field_validator("score")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v
