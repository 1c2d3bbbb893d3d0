"""Load a policy file: YAML, environment references, prices, validation and the policy hash.

Environment references look like ``${NAME}`` or ``${NAME:-default}`` and may appear in any
string. Credentials (``api_key``) must be references, never literals, so that secrets stay out
of git; an unset credential does not fail the load but marks the model unavailable, so that a
route can fall back from a hosted tier whose key is missing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from router.policy.schema import Policy
from router.settings import Settings, configure_libraries

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
CREDENTIAL_KEYS = frozenset({"api_key"})


class PolicyError(Exception):
    """A policy file is invalid. ``messages`` name the file, the key path and the problem."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


@dataclass(frozen=True, slots=True)
class LoadedPolicy:
    """A validated policy with the files it came from and its hash."""

    policy: Policy
    hash: str
    """First 12 hex digits of the SHA-256 of every file the policy was built from."""
    files: tuple[Path, ...]


def _path_str(path: tuple[str | int, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _substitute(
    node: Any, env: Mapping[str, str], path: tuple[str | int, ...], errors: list[str], file: Path
) -> Any:
    """Resolve environment references in every string below ``node``."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            key = str(k)
            if key in CREDENTIAL_KEYS and v is not None:
                out.update(_credential(v, env, (*path, key), errors, file))
            else:
                out[key] = _substitute(v, env, (*path, key), errors, file)
        return out
    if isinstance(node, list):
        return [_substitute(v, env, (*path, i), errors, file) for i, v in enumerate(node)]
    if isinstance(node, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            errors.append(
                f"{file}: {_path_str(path)}: environment variable {name} is not set "
                f"(give a default with ${{{name}:-value}})"
            )
            return ""

        return ENV_REF.sub(repl, node)
    return node


def _credential(
    value: Any, env: Mapping[str, str], path: tuple[str | int, ...], errors: list[str], file: Path
) -> dict[str, Any]:
    """Resolve a credential reference into ``api_key`` or ``missing_credential``."""
    m = ENV_REF.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        errors.append(
            f"{file}: {_path_str(path)}: credentials must be environment references such as "
            "${OPENAI_API_KEY}, not literal values"
        )
        return {}
    name, default = m.group(1), m.group(2)
    secret = env.get(name) or default
    if secret:
        return {"api_key": secret}
    return {"missing_credential": f"{name} is not set"}


def _read_yaml(path: Path, errors: list[str]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        errors.append(f"{path}: cannot read: {exc.strerror or exc}")
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        errors.append(f"{path}: invalid YAML{where}: {problem}")
        return None


def _load_prices(path: Path, errors: list[str]) -> dict[str, dict[str, Any]]:
    data = _read_yaml(path, errors)
    if data is None:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("prices"), dict):
        errors.append(f"{path}: prices: expected a mapping 'prices: {{model: {{...}}}}'")
        return {}
    extra = set(data) - {"prices", "version"}
    if extra:
        errors.append(f"{path}: unknown top-level keys {sorted(extra)} (expected 'prices')")
    return {str(k): v for k, v in data["prices"].items()}


def _apply_prices(raw: dict[str, Any], prices: dict[str, dict[str, Any]]) -> None:
    """Fill each model's missing ``price``: the prices file by name, then by upstream name,
    then litellm's bundled map (local models are free unless priced)."""
    for m in raw.get("models") or []:
        if not isinstance(m, dict) or m.get("price") is not None:
            continue
        names = [n for n in (m.get("name"), m.get("upstream_model")) if isinstance(n, str)]
        for name in names:
            if name in prices:
                m["price"] = prices[name]
                break
        else:
            if m.get("backend") == "local":
                continue
            for name in names:
                bundled = bundled_price(name)
                if bundled is not None:
                    m["price"] = bundled
                    break


def bundled_price(model_name: str) -> dict[str, float] | None:
    """The price litellm ships for ``model_name`` (its local map, never fetched), if known.

    Imported lazily: litellm is heavy and only needed when a policy names an unpriced model.
    """
    configure_libraries()
    import litellm

    entry: Any = litellm.model_cost.get(model_name)
    if not isinstance(entry, dict):
        return None
    inp, out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if not isinstance(inp, int | float) or not isinstance(out, int | float):
        return None
    price = {
        "input_usd_per_mtok": round(inp * 1_000_000, 9),
        "output_usd_per_mtok": round(out * 1_000_000, 9),
    }
    for field, key in (
        ("cached_input_usd_per_mtok", "cache_read_input_token_cost"),
        ("cache_write_usd_per_mtok", "cache_creation_input_token_cost"),
    ):
        value = entry.get(key)
        if isinstance(value, int | float):
            price[field] = round(value * 1_000_000, 9)
    return price


def _validation_messages(exc: ValidationError, file: Path) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not allowed here)"
        out.append(f"{file}: {_path_str(loc)}: {msg}")
    return out


def load_policy(path: str | Path, env: Mapping[str, str] | None = None) -> LoadedPolicy:
    """Read, resolve and validate the policy at ``path``; raise :class:`PolicyError` if invalid.

    A top-level ``prices_file`` key names a prices file, relative to the policy file, whose
    entries fill the ``price`` of models that do not set one. ``${NAME}`` references are
    resolved from ``env``, by default :attr:`Settings.policy_env` (the process environment).
    """
    file = Path(path)
    env = Settings().policy_env if env is None else env
    errors: list[str] = []
    data = _read_yaml(file, errors)
    if errors:
        raise PolicyError(errors)
    if not isinstance(data, dict):
        raise PolicyError([f"{file}: (top level): expected a mapping of policy sections"])
    files = [file]
    prices_ref = data.pop("prices_file", None)
    prices: dict[str, dict[str, Any]] = {}
    if prices_ref is not None:
        prices_path = (file.parent / str(prices_ref)).resolve()
        files.append(prices_path)
        prices = _load_prices(prices_path, errors)
    raw = _substitute(data, env, (), errors, file)
    if errors:
        raise PolicyError(errors)
    _apply_prices(raw, prices)
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(_validation_messages(exc, file)) from None
    # local models and the encoder without a price are free (or priced from their GPU hour)
    unpriced = [
        m.name for m in policy.models if m.price is None and m.backend not in ("local", "encoder")
    ]
    if unpriced:
        raise PolicyError(
            [
                f"{file}: models: no price for {n!r}; set 'price' or list it in prices_file "
                "(litellm's bundled map has no entry either)"
                for n in unpriced
            ]
        )
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    return LoadedPolicy(policy=policy, hash=digest.hexdigest()[:12], files=tuple(files))
