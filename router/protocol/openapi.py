"""The OpenAPI 3.1 document of the gateway's public HTTP surface, generated from its models.

The request bodies' schemas are the pydantic models' own JSON schemas (``model_json_schema``:
the chat request, feedback, the admin API's key requests, the error envelope), so the document
cannot drift from what the gateway validates; their nested models become
``components/schemas`` entries. It describes what a client may send (chat, feedback, models,
health, metrics), the admin API for virtual keys (``ROUTER_ADMIN_KEY`` as the bearer token) and
the error shape; ``GET /openapi.json`` serves it and the schemathesis fuzz test generates
requests from it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from router.keys.requests import KeyCreate, KeyUpdate
from router.protocol.chat_request import ChatRequest
from router.protocol.feedback import FeedbackBody

REF_TEMPLATE = "#/components/schemas/{model}"


class ErrorDetail(BaseModel):
    """The ``error`` object of an error response (``router.errors.error_body`` builds it)."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """OpenAI's error envelope, the body of every 4xx and 5xx answer."""

    error: ErrorDetail


BODIES: dict[str, type[BaseModel]] = {
    "ChatRequest": ChatRequest,
    "Feedback": FeedbackBody,
    "Error": ErrorBody,
    "KeyCreate": KeyCreate,
    "KeyUpdate": KeyUpdate,
}
"""The documented models, by their name in ``components/schemas``."""


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json_body(ref: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _schemas() -> dict[str, Any]:
    """Every model of :data:`BODIES`, its nested models (``$defs``) hoisted beside it."""
    out: dict[str, Any] = {}
    for name, model in BODIES.items():
        schema = model.model_json_schema(by_alias=True, ref_template=REF_TEMPLATE)
        for def_name, nested in schema.pop("$defs", {}).items():
            out[def_name] = nested
        out[name] = schema
    return out


def _admin_paths(errors: dict[str, Any]) -> dict[str, Any]:
    """``/admin/keys`` operations (bearer ``ROUTER_ADMIN_KEY``)."""
    obj = {"application/json": {"schema": {"type": "object"}}}
    key_id = [{"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    admin_errors = {
        **errors,
        "403": _error_response("The admin API is disabled"),
        "404": _error_response("No such key"),
        "413": _error_response("Body too large"),
        "503": _error_response("Key store unavailable"),
    }
    return {
        "/admin/keys": {
            "post": {
                "operationId": "createKey",
                "requestBody": _json_body("KeyCreate"),
                "responses": {"201": {"description": "Created", "content": obj}, **admin_errors},
            },
            "get": {
                "operationId": "listKeys",
                "parameters": [
                    {"name": "team", "in": "query", "required": False, "schema": {"type": "string"}}
                ],
                "responses": {"200": {"description": "Keys", "content": obj}, **admin_errors},
            },
        },
        "/admin/keys/{key_id}": {
            "get": {
                "operationId": "getKey",
                "parameters": key_id,
                "responses": {"200": {"description": "The key", "content": obj}, **admin_errors},
            },
            "patch": {
                "operationId": "updateKey",
                "parameters": key_id,
                "requestBody": _json_body("KeyUpdate"),
                "responses": {"200": {"description": "Updated", "content": obj}, **admin_errors},
            },
            "delete": {
                "operationId": "revokeKey",
                "parameters": key_id,
                "responses": {"200": {"description": "Revoked", "content": obj}, **admin_errors},
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document (built on each call; it is small)."""
    errors = {
        "400": _error_response("Invalid request (the message names the field)"),
        "401": _error_response("Missing or invalid API key"),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hybrid-router",
            "version": "1",
            "description": "An OpenAI-compatible gateway that routes each request to a local "
            "or hosted model.",
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
        "paths": {
            "/v1/chat/completions": {
                "post": {
                    "operationId": "createChatCompletion",
                    "requestBody": _json_body("ChatRequest"),
                    "responses": {
                        "200": {
                            "description": "A completion (JSON), or an SSE stream",
                            "content": {
                                "application/json": {"schema": {"type": "object"}},
                                "text/event-stream": {"schema": {"type": "string"}},
                            },
                        },
                        **errors,
                        "403": _error_response("The key may not use this model or route"),
                        "404": _error_response("Unknown model or route"),
                        "413": _error_response("Body too large"),
                        "429": _error_response("Rate limit or budget exhausted"),
                        "502": _error_response("Every upstream failed"),
                        "503": _error_response("Not ready, queue full, or budget store down"),
                        "504": _error_response("Upstream timeout"),
                    },
                }
            },
            "/v1/feedback": {
                "post": {
                    "operationId": "createFeedback",
                    "requestBody": _json_body("Feedback"),
                    "responses": {
                        "200": {
                            "description": "Stored",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **errors,
                        "404": _error_response("Unknown request id"),
                        "413": _error_response("Body too large"),
                        "503": _error_response("Feedback store unavailable"),
                    },
                }
            },
            "/v1/models": {
                "get": {
                    "operationId": "listModels",
                    "responses": {
                        "200": {
                            "description": "Routes and models",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "401": errors["401"],
                    },
                }
            },
            "/healthz": {"get": {"operationId": "healthz", "responses": _plain("Alive")}},
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "responses": {**_plain("Ready"), "503": {"description": "Not ready"}},
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "401": errors["401"],
                    },
                }
            },
            "/openapi.json": {
                "get": {"operationId": "openapi", "responses": _plain("This document")}
            },
            **_admin_paths(errors),
        },
    }


def _plain(description: str) -> dict[str, Any]:
    return {"200": {"description": description}}
