"""What a virtual key is: its owner (tenant, team), limits, allowed models and expiry."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

SECRET_PREFIX = "sk-"
WINDOWS = ("day", "week", "month", "total")


def new_secret() -> str:
    """A fresh key secret: ``sk-`` and 43 URL-safe characters (256 random bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    """A fresh key id such as ``key_3f9c0a1b2c4d5e6f`` (not secret, safe to log)."""
    return "key_" + secrets.token_hex(8)


def secret_digest(secret: str) -> str:
    """The SHA-256 digest (hex) under which a secret is stored; the secret itself never is."""
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_expiry(text: str) -> datetime:
    """``2026-12-31`` (end of that UTC day is *not* implied: midnight) or an ISO 8601 time."""
    try:
        d = datetime.fromisoformat(text)
    except ValueError:
        d = datetime.combine(date.fromisoformat(text), datetime.min.time())
    return d if d.tzinfo else d.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class VirtualKey:
    """One virtual key as stored (without its secret)."""

    id: str
    team: str
    tenant: str
    digest: str
    """SHA-256 (hex) of the secret."""
    name: str | None = None
    budget_usd: float | None = None
    window: str = "month"
    rpm: int | None = None
    tpm: int | None = None
    models: tuple[str, ...] = ()
    """Models or route aliases the key may request; empty: all."""
    expires_at: datetime | None = None
    revoked: bool = False
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def active(self, now: datetime | None = None) -> bool:
        """Not revoked and not expired at ``now``."""
        if self.revoked:
            return False
        return self.expires_at is None or (now or datetime.now(UTC)) < self.expires_at

    def allows(self, *names: str | None) -> bool:
        """Whether any of ``names`` (requested model/route, target model) is allowed."""
        return not self.models or any(n in self.models for n in names if n)

    def to_redis(self) -> dict[str, str]:
        """The Redis hash fields (strings; empty fields are left out)."""
        out: dict[str, str] = {"id": self.id, "team": self.team, "tenant": self.tenant}
        out["digest"] = self.digest
        out["window"] = self.window
        out["revoked"] = "1" if self.revoked else "0"
        out["created_at"] = self.created_at.isoformat()
        if self.name:
            out["name"] = self.name
        if self.budget_usd is not None:
            out["budget_usd"] = repr(self.budget_usd)
        if self.rpm is not None:
            out["rpm"] = str(self.rpm)
        if self.tpm is not None:
            out["tpm"] = str(self.tpm)
        if self.models:
            out["models"] = ",".join(self.models)
        if self.expires_at is not None:
            out["expires_at"] = self.expires_at.isoformat()
        return out

    @classmethod
    def from_redis(cls, h: dict[str, str]) -> VirtualKey:
        """Parse a Redis hash written by :meth:`to_redis`."""
        return cls(
            id=h["id"],
            team=h["team"],
            tenant=h.get("tenant") or h["team"],
            digest=h["digest"],
            name=h.get("name") or None,
            budget_usd=float(h["budget_usd"]) if h.get("budget_usd") else None,
            window=h.get("window") or "month",
            rpm=int(h["rpm"]) if h.get("rpm") else None,
            tpm=int(h["tpm"]) if h.get("tpm") else None,
            models=tuple(m for m in (h.get("models") or "").split(",") if m),
            expires_at=datetime.fromisoformat(h["expires_at"]) if h.get("expires_at") else None,
            revoked=h.get("revoked") == "1",
            created_at=datetime.fromisoformat(h["created_at"])
            if h.get("created_at")
            else datetime.now(UTC),
        )

    def public(self) -> dict[str, Any]:
        """JSON-safe view for ``keys list`` and the admin API (no digest)."""
        d = asdict(self)
        d.pop("digest")
        d["models"] = list(self.models)
        d["expires_at"] = self.expires_at.isoformat() if self.expires_at else None
        d["created_at"] = self.created_at.isoformat()
        d["active"] = self.active()
        return d

    def updated(self, **changes: Any) -> VirtualKey:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)
