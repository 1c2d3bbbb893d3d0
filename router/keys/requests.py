"""Validated create/update requests for virtual keys, shared by the CLI and the admin API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from router.keys.model import parse_expiry


def _expiry(v: Any) -> Any:
    return parse_expiry(v) if isinstance(v, str) else v


def _models(v: Any) -> Any:
    if isinstance(v, str):
        return tuple(m.strip() for m in v.split(",") if m.strip())
    return v


class KeyCreate(BaseModel):
    """``POST /admin/keys`` and ``router keys create``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    team: Annotated[str, Field(min_length=1, max_length=128)]
    tenant: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    name: Annotated[str, Field(max_length=200)] | None = None
    budget_usd: Annotated[float, Field(ge=0)] | None = None
    window: Literal["day", "week", "month", "total"] = "month"
    rpm: Annotated[int, Field(gt=0)] | None = None
    tpm: Annotated[int, Field(gt=0)] | None = None
    models: tuple[str, ...] = ()
    expires_at: datetime | None = Field(default=None, alias="expires")

    @field_validator("expires_at", mode="before")
    @classmethod
    def _expiry(cls, v: Any) -> Any:
        return _expiry(v)

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, v: Any) -> Any:
        return _models(v)

    def fields(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`router.keys.store.RedisKeyStore.create`."""
        return self.model_dump(exclude={"team"})


class KeyUpdate(BaseModel):
    """``PATCH /admin/keys/{id}`` and ``router keys update``: only the fields given change;
    ``null`` clears an optional limit."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    team: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    name: Annotated[str, Field(max_length=200)] | None = None
    budget_usd: Annotated[float, Field(ge=0)] | None = None
    window: Literal["day", "week", "month", "total"] | None = None
    rpm: Annotated[int, Field(gt=0)] | None = None
    tpm: Annotated[int, Field(gt=0)] | None = None
    models: tuple[str, ...] | None = None
    expires_at: datetime | None = Field(default=None, alias="expires")

    @field_validator("expires_at", mode="before")
    @classmethod
    def _expiry(cls, v: Any) -> Any:
        return _expiry(v)

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, v: Any) -> Any:
        return _models(v)

    def changes(self) -> dict[str, Any]:
        """The fields that were given (``None`` included: it clears the field)."""
        out = self.model_dump(exclude_unset=True)
        if "team" in out and out["team"] is None:
            out.pop("team")
        if "window" in out and out["window"] is None:
            out.pop("window")
        if "models" in out and out["models"] is None:
            out["models"] = ()
        return out
