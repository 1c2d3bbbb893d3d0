"""The admin API for virtual keys, guarded by ``ROUTER_ADMIN_KEY`` (a bearer token).

=================================  ==========================================================
``POST /admin/keys``               create: ``{"team", "budget_usd", "window", "rpm", "tpm",
                                   "models", "expires"}`` -> ``{"key": "sk-...", "id", ...}``
                                   (the secret is shown only here)
``GET /admin/keys[?team=T]``       list (no secrets, no digests)
``GET /admin/keys/{id}``           one key
``PATCH /admin/keys/{id}``         update the fields given (``null`` clears a limit)
``DELETE /admin/keys/{id}``        revoke (also ``POST /admin/keys/{id}/revoke``)
=================================  ==========================================================

Without ``ROUTER_ADMIN_KEY`` in the environment the admin API answers 403 to everyone.
"""

from __future__ import annotations

import hmac

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from router.api.body import read_body
from router.api.responses import JSONBytesResponse, error_response
from router.auth import bearer_token
from router.errors import (
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RouterError,
    ServiceUnavailable,
    Unauthenticated,
)
from router.keys.requests import KeyCreate, KeyUpdate
from router.keys.store import KeyNotFound, RedisKeyStore
from router.protocol.body import invalid_request_from
from router.protocol.jsonsafe import check_numbers
from router.services import Services
from router.settings import admin_key

MAX_BODY_BYTES = 64 * 1024


def _check_admin(request: Request) -> RedisKeyStore:
    expected = admin_key()
    if not expected:
        raise PermissionDenied(
            "The admin API is disabled: set ROUTER_ADMIN_KEY.", code="admin_disabled"
        )
    token = bearer_token(request.headers.get("authorization"))
    if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthenticated("Invalid admin key.", param="authorization")
    services: Services = request.app.state.services
    if services.keys is None:
        raise ServiceUnavailable(
            "The key store (Redis) is unavailable.", code="key_store_unavailable"
        )
    return services.keys


async def _json(request: Request) -> object:
    services: Services = request.app.state.services
    timeout_s = services.policies.current.policy.limits.body_timeout_s
    body = await read_body(request, MAX_BODY_BYTES, timeout_s)
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The body is not valid JSON: {exc}.", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    check_numbers(body)
    return data


async def create_key(request: Request) -> Response:
    """``POST /admin/keys``."""
    try:
        store = _check_admin(request)
        try:
            spec = KeyCreate.model_validate(await _json(request))
        except ValidationError as exc:
            raise invalid_request_from(exc) from exc
        secret, key = await store.create(spec.team, **spec.fields())
    except RouterError as err:
        return error_response(err, {})
    return JSONBytesResponse({"key": secret, **key.public()}, status_code=201)


async def list_keys(request: Request) -> Response:
    """``GET /admin/keys``."""
    try:
        store = _check_admin(request)
        keys = await store.list(request.query_params.get("team") or None)
    except RouterError as err:
        return error_response(err, {})
    return JSONBytesResponse({"object": "list", "data": [k.public() for k in keys]})


async def get_key(request: Request) -> Response:
    """``GET /admin/keys/{id}``."""
    try:
        store = _check_admin(request)
        key = await store.get(request.path_params["key_id"])
    except KeyNotFound:
        return _not_found(request)
    except RouterError as err:
        return error_response(err, {})
    return JSONBytesResponse(key.public())


async def update_key(request: Request) -> Response:
    """``PATCH /admin/keys/{id}``."""
    try:
        store = _check_admin(request)
        try:
            spec = KeyUpdate.model_validate(await _json(request))
        except ValidationError as exc:
            raise invalid_request_from(exc) from exc
        key = await store.update(request.path_params["key_id"], **spec.changes())
    except KeyNotFound:
        return _not_found(request)
    except RouterError as err:
        return error_response(err, {})
    return JSONBytesResponse(key.public())


async def revoke_key(request: Request) -> Response:
    """``DELETE /admin/keys/{id}`` or ``POST /admin/keys/{id}/revoke``."""
    try:
        store = _check_admin(request)
        key = await store.revoke(request.path_params["key_id"])
    except KeyNotFound:
        return _not_found(request)
    except RouterError as err:
        return error_response(err, {})
    return JSONBytesResponse(key.public())


def _not_found(request: Request) -> Response:
    err = NotFound(f"No key {request.path_params['key_id']!r}.", code="key_not_found")
    return error_response(err, {})


ROUTES = [
    Route("/admin/keys", create_key, methods=["POST"]),
    Route("/admin/keys", list_keys, methods=["GET"]),
    Route("/admin/keys/{key_id}", get_key, methods=["GET"]),
    Route("/admin/keys/{key_id}", update_key, methods=["PATCH"]),
    Route("/admin/keys/{key_id}", revoke_key, methods=["DELETE"]),
    Route("/admin/keys/{key_id}/revoke", revoke_key, methods=["POST"]),
]
"""The admin routes, added to the app by :func:`router.app.create_app`."""
