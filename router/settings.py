"""Process settings, read from the environment once at startup."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_POLICY = "policies/default.yaml"


@dataclass(frozen=True, slots=True)
class Settings:
    """Settings of one gateway process. Everything else lives in the policy."""

    policy_path: Path = Path(DEFAULT_POLICY)
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "info"
    log_format: str = "json"
    """``json`` (one object a line) or ``console`` (for people)."""
    access_log: bool = True
    master_key: str | None = None
    """``ROUTER_MASTER_KEY``: a bearer key accepted when the policy says ``auth: keys``."""
    policy_poll_s: float = 1.0
    upstream_max_connections: int = 512
    redis_url: str | None = None
    data_dir: Path | None = None
    spool_max_bytes: int = 256 * 1024 * 1024
    """``ROUTER_LEDGER_SPOOL_MAX_BYTES``: the ledger spool's bound (``/readyz`` fails past it)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``ROUTER_*`` variables (and ``REDIS_URL``), then ``overrides``."""
        e = os.environ if env is None else env
        values: dict[str, object] = {
            "policy_path": Path(e.get("ROUTER_POLICY", DEFAULT_POLICY)),
            "host": e.get("ROUTER_HOST", "127.0.0.1"),
            "port": int(e.get("ROUTER_PORT", "8080")),
            "log_level": e.get("ROUTER_LOG_LEVEL", "info").lower(),
            "log_format": e.get("ROUTER_LOG_FORMAT", "json").lower(),
            "access_log": e.get("ROUTER_ACCESS_LOG", "1") not in ("0", "false", "no"),
            "master_key": e.get("ROUTER_MASTER_KEY") or None,
            "policy_poll_s": float(e.get("ROUTER_POLICY_POLL_S", "1.0")),
            "upstream_max_connections": int(e.get("ROUTER_UPSTREAM_MAX_CONNECTIONS", "512")),
            "redis_url": e.get("REDIS_URL") or None,
            "data_dir": Path(e["ROUTER_DATA_DIR"]) if e.get("ROUTER_DATA_DIR") else None,
            "spool_max_bytes": int(e.get("ROUTER_LEDGER_SPOOL_MAX_BYTES", str(256 * 1024 * 1024))),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
