"""``GET /openapi.json``: an OpenAPI 3.1 document of the gateway's public HTTP surface.

It describes what a client may send (the chat body's main fields, feedback, models, health,
metrics), the admin API for virtual keys (``ROUTER_ADMIN_KEY`` as the bearer token; see
``router/api/admin.py``) and the error shape; the schemathesis fuzz test generates requests
from it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from router.api.feedback import REQUEST_ID_PATTERN
from router.api.responses import JSONBytesResponse
from router.keys.requests import KeyCreate, KeyUpdate

ROLES = ["system", "developer", "user", "assistant", "tool", "function"]


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
    content_part = {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"type": "string"}, "text": {"type": "string"}},
    }
    message = {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"type": "string", "enum": ROLES},
            "content": {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": content_part},
                    {"type": "null"},
                ]
            },
            "name": {"type": "string"},
        },
    }
    chat = {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": {"type": "string", "minLength": 1, "description": "auto, a route or model"},
            "messages": {"type": "array", "minItems": 1, "items": message},
            "stream": {"type": "boolean"},
            "stream_options": {
                "type": "object",
                "properties": {"include_usage": {"type": "boolean"}},
            },
            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
            "top_p": {"type": "number", "minimum": 0, "maximum": 1},
            "n": {"type": "integer", "minimum": 1, "maximum": 128},
            "max_tokens": {"type": "integer", "minimum": 1},
            "max_completion_tokens": {"type": "integer", "minimum": 1},
            "seed": {"type": "integer"},
            "stop": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "user": {"type": "string"},
            "response_format": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"type": "string", "enum": ["text", "json_object", "json_schema"]}
                },
            },
        },
    }
    feedback = {
        "type": "object",
        "required": ["request_id"],
        "additionalProperties": False,
        "properties": {
            "request_id": {"type": "string", "pattern": REQUEST_ID_PATTERN},
            "score": {"type": "number"},
            "thumbs": {"type": "string", "enum": ["up", "down"]},
            "needed_strong": {"type": "boolean"},
            "comment": {"type": "string", "maxLength": 4000},
        },
    }
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"]},
                },
            }
        },
    }
    return {
        "ChatRequest": chat,
        "Feedback": feedback,
        "Error": error,
        "Message": message,
        "KeyCreate": _pydantic_schema(KeyCreate.model_json_schema(by_alias=True)),
        "KeyUpdate": _pydantic_schema(KeyUpdate.model_json_schema(by_alias=True)),
    }


def _pydantic_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema without its title noise (it has no ``$defs`` here)."""
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


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


async def openapi(request: Request) -> Response:
    """Serve the document."""
    return JSONBytesResponse(openapi_document())
