"""The OpenAPI 3.1 document of the gateway's public HTTP surface, generated from its models.

The request bodies' schemas are the pydantic models' own JSON schemas (``model_json_schema``:
the chat, Responses, Messages, count_tokens and embeddings requests, feedback, the admin API's
key requests, the two error envelopes), so the document cannot drift from what the gateway
validates; their nested models become ``components/schemas`` entries. It describes what a
client may send (chat, Responses and stored responses, Anthropic Messages and count_tokens,
embeddings, feedback, models, health, metrics), the admin API for virtual keys
(``ROUTER_ADMIN_KEY`` as the bearer token) and the error shapes (OpenAI's everywhere but the
Messages endpoints, which answer Anthropic's); ``GET /openapi.json`` serves it and the
schemathesis fuzz test generates requests from it.

The embeddings request model lives with its endpoint (``router.api.embeddings``), above this
package, so the caller passes it in (:func:`openapi_document`'s ``embeddings``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from router.keys.requests import KeyCreate, KeyUpdate
from router.protocol.chat_request import ChatRequest
from router.protocol.feedback import FeedbackBody
from router.protocol.messages import CountTokensRequest, MessagesRequest
from router.protocol.responses import ResponsesRequest

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


class AnthropicErrorDetail(BaseModel):
    """The ``error`` object of an Anthropic error (the message names the field)."""

    type: str
    message: str


class AnthropicErrorBody(BaseModel):
    """Anthropic's error shape, the body of every 4xx and 5xx answer of ``/v1/messages*``."""

    type: Literal["error"]
    error: AnthropicErrorDetail


BODIES: dict[str, type[BaseModel]] = {
    "ChatRequest": ChatRequest,
    "ResponsesRequest": ResponsesRequest,
    "MessagesRequest": MessagesRequest,
    "CountTokensRequest": CountTokensRequest,
    "Feedback": FeedbackBody,
    "Error": ErrorBody,
    "AnthropicError": AnthropicErrorBody,
    "KeyCreate": KeyCreate,
    "KeyUpdate": KeyUpdate,
}
"""The documented models of this package, by their name in ``components/schemas``."""


def _error_response(description: str, schema: str = "Error") -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _json_object(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }


def _json_body(ref: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _schemas(bodies: dict[str, type[BaseModel]]) -> dict[str, Any]:
    """Every model of ``bodies``, its nested models (``$defs``) hoisted beside it.

    Two different nested models of one name would silently replace each other's schema, so
    that is refused (a model shared by two bodies, e.g. Messages' ``Block``, is the same).
    """
    out: dict[str, Any] = {}
    for name, model in bodies.items():
        schema = model.model_json_schema(by_alias=True, ref_template=REF_TEMPLATE)
        for def_name, nested in [*schema.pop("$defs", {}).items(), (name, schema)]:
            if out.setdefault(def_name, nested) != nested:
                raise ValueError(f"two models are called {def_name!r} in the OpenAPI document")
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


def _served_errors(schema: str) -> dict[str, Any]:
    """The errors of an endpoint that is authenticated, admitted, charged and sent upstream."""
    return {
        "400": _error_response("Invalid request (the error names the field)", schema),
        "401": _error_response("Missing or invalid API key", schema),
        "403": _error_response("The key may not use this model or route", schema),
        "404": _error_response("Unknown model or route", schema),
        "413": _error_response("Body too large", schema),
        "429": _error_response("Rate limit or budget exhausted", schema),
        "502": _error_response("Every upstream failed", schema),
        "503": _error_response("Not ready, queue full, or budget store down", schema),
        "504": _error_response("Upstream timeout", schema),
    }


def _completion(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    }


def _protocol_paths() -> dict[str, Any]:
    """OpenAI Responses (and its stored responses) and Anthropic Messages (and count_tokens)."""
    response_id = [
        {"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    stored_errors = {
        "401": _error_response("Missing or invalid API key"),
        "404": _error_response("No such response for this tenant"),
        "503": _error_response("Response store unavailable"),
    }
    # The Anthropic SDKs send their key as ``x-api-key``; a bearer token works too.
    anthropic_security: list[dict[str, list[str]]] = [{"anthropicKey": []}, {"bearer": []}, {}]
    anthropic = _served_errors("AnthropicError")
    return {
        "/v1/responses": {
            "post": {
                "operationId": "createResponse",
                "requestBody": _json_body("ResponsesRequest"),
                "responses": {
                    "200": _completion("A response (JSON), or its SSE event stream"),
                    **_served_errors("Error"),
                },
            }
        },
        "/v1/responses/{response_id}": {
            "get": {
                "operationId": "getResponse",
                "parameters": response_id,
                "responses": {"200": _json_object("The stored response"), **stored_errors},
            },
            "delete": {
                "operationId": "deleteResponse",
                "parameters": response_id,
                "responses": {"200": _json_object("Deleted"), **stored_errors},
            },
        },
        "/v1/messages": {
            "post": {
                "operationId": "createMessage",
                "security": anthropic_security,
                "requestBody": _json_body("MessagesRequest"),
                "responses": {
                    "200": _completion("A Message (JSON), or its SSE event stream"),
                    **anthropic,
                },
            }
        },
        "/v1/messages/count_tokens": {
            "post": {
                "operationId": "countMessageTokens",
                "security": anthropic_security,
                "requestBody": _json_body("CountTokensRequest"),
                "responses": {
                    "200": _json_object('{"input_tokens": n}'),
                    **{
                        k: v
                        for k, v in anthropic.items()
                        if k in ("400", "401", "403", "404", "413")
                    },
                },
            }
        },
    }


def openapi_document(embeddings: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI document (built on each call; it is small).

    ``embeddings`` is the ``POST /v1/embeddings`` body model (it lives with its endpoint).
    """
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
            "schemas": _schemas({**BODIES, "EmbeddingsRequest": embeddings}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "anthropicKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
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
            **_protocol_paths(),
            "/v1/embeddings": {
                "post": {
                    "operationId": "createEmbeddings",
                    "requestBody": _json_body("EmbeddingsRequest"),
                    "responses": {
                        "200": _json_object("The embeddings"),
                        **_served_errors("Error"),
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
