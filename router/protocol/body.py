"""Strict validation of a JSON request body into a pydantic model, for every protocol adapter."""

from __future__ import annotations

from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from router.errors import InvalidRequest
from router.protocol.chat_request import invalid_request_from
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
