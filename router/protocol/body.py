"""Strict validation of a JSON request body into a pydantic model, for every protocol adapter."""

from __future__ import annotations

from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from router.errors import InvalidRequest
from router.protocol.jsonsafe import check_numbers

ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_json_object(body: bytes, model: type[ModelT]) -> tuple[ModelT, dict[str, object]]:
    """``body`` validated strictly as ``model`` (no coercion: ``"0.5"`` is not a number), and
    the raw object; :class:`InvalidRequest` naming the field otherwise."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"The request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(raw, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    check_numbers(body)
    try:
        return model.model_validate_json(body, strict=True), raw
    except ValidationError as exc:
        raise invalid_request_from(exc) from None


def _loc_to_param(loc: tuple[int | str, ...]) -> str:
    """Render a pydantic location as ``messages[0].content``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "str" or part.startswith(("list[", "function-", "constrained-")):
            continue  # pydantic's names for union members, not fields
        else:
            out += f".{part}" if out else part
    return out


def invalid_request_from(exc: ValidationError) -> InvalidRequest:
    """Turn the first pydantic error into an OpenAI-style 400 that names the field."""
    err = exc.errors(include_url=False)[0]
    if err["type"] == "json_invalid":
        return InvalidRequest(
            f"The request body is not valid JSON: {err['msg']}", code="invalid_json"
        )
    if err["type"] == "model_type" and not err["loc"]:
        return InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    param = _loc_to_param(err["loc"])
    if param == "messages" and err["type"] == "too_short":
        return InvalidRequest(
            "'messages' must contain at least one message.", param="messages", code="empty_array"
        )
    if err["type"] == "missing":
        return InvalidRequest(
            f"Missing required parameter: '{param}'.",
            param=param,
            code="missing_required_parameter",
        )
    got = err.get("input")
    shown = repr(got) if not isinstance(got, dict | list) else type(got).__name__
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return InvalidRequest(
        f"Invalid value for '{param}': {err['msg']} (got {shown}).",
        param=param,
        code="invalid_value",
    )
