"""Deterministic sample values for JSON schemas (structured output and tool-call arguments).

Covers what OpenAI's strict mode and pydantic-generated schemas use: objects, arrays, scalars,
``enum``/``const``, ``$ref`` into ``$defs``, ``anyOf``/``oneOf``/``allOf``, nullable type lists,
``minimum``/``maximum``, ``minLength``/``maxLength``, ``minItems`` and common string formats.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

_MAX_SCHEMA_DEPTH = 8
_FORMAT_SAMPLES = MappingProxyType(
    {
        "date-time": "2024-01-01T00:00:00Z",
        "date": "2024-01-01",
        "time": "12:00:00",
        "email": "mock@example.com",
        "uri": "https://example.com/mock",
        "uuid": "00000000-0000-4000-8000-000000000000",
    }
)


def value_for_schema(schema: Any, text: str, root: Any = None, depth: int = 0) -> Any:
    """A deterministic value that satisfies a (simple) JSON schema; strings get ``text``."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > _MAX_SCHEMA_DEPTH:
        return text
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return value_for_schema(target, text, root, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            usable = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return value_for_schema((usable or options)[0], text, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and "properties" in schema:
        kind = "object"
    if kind == "object":
        props = schema.get("properties")
        if not isinstance(props, dict):
            return {}
        return {k: value_for_schema(v, text, root, depth + 1) for k, v in props.items()}
    if kind == "array":
        item = value_for_schema(schema.get("items", {}), text, root, depth + 1)
        count = schema.get("minItems", 1)
        return [item] * (count if isinstance(count, int) and count >= 0 else 1)
    if kind in ("integer", "number"):
        value: float = len(text.split()) if kind == "integer" else len(text.split()) / 2
        low, high = schema.get("minimum"), schema.get("maximum")
        if isinstance(low, int | float):
            value = max(value, low)
        if isinstance(high, int | float):
            value = min(value, high)
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string_for_schema(schema, text)


def _string_for_schema(schema: dict[str, Any], text: str) -> str:
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMAT_SAMPLES:
        return _FORMAT_SAMPLES[fmt]
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(text) < low:
        text = text + "x" * (low - len(text))
    if isinstance(high, int) and len(text) > high:
        text = text[:high]
    return text
