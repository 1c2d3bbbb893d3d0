"""``POST /v1/embeddings``: OpenAI embeddings from the policy's ``kind: embedding`` models.

An embedding is not a chat turn, so it does not run the chat pipeline's routing, cache or
classifier; it gets the same authentication, body limits, key model lists, budgets and rate
limits (a reservation of the worst-case input cost, settled to the actual cost), one ledger
row priced like chat (input tokens at the model's price), and the ``x-router-*`` headers. The
policy's PII guard applies to the inputs (:mod:`router.guard.embeddings`: block, pin to a local
embedding model, or redact before a hosted call) before anything is reserved.

``backend: encoder`` serves the gateway's own all-MiniLM-L6-v2 (384 dimensions); an
``openai_compat`` embedding model is called at its ``/embeddings``. Vectors are returned as
JSON floats or, with ``encoding_format: base64``, as little-endian float32 bytes in base64, as
OpenAI does.
"""

from __future__ import annotations

import base64
import contextlib
import time
from typing import Annotated, Any, Literal

import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, field_validator
from starlette.requests import Request
from starlette.responses import Response

from router.api.body import read_body
from router.api.endpoint import request_id
from router.api.responses import JSONBytesResponse, error_response
from router.auth import Principal
from router.backends.embedding_calls import (
    Embedded,
    LocalEncoders,
    check_encoder_request,
    hosted_embed,
)
from router.budget.admission import MASTER_KEY_ID, scopes_for
from router.budget.pricing import model_cost_usd
from router.budget.reserve import Reservation
from router.errors import InvalidRequest, NotFound, PermissionDenied, RouterError
from router.guard.embeddings import EmbeddingsVerdict, guard_embeddings
from router.keys.model import VirtualKey
from router.keys.store import KeyNotFound
from router.ledger.record import LedgerRecord
from router.observability.hub import NO_LABEL
from router.policy.load import LoadedPolicy
from router.policy.schema import ModelSpec
from router.protocol.body import parse_json_object
from router.protocol.chat_response import Usage
from router.services import Services

log = structlog.get_logger("router.request")
MAX_INPUTS = 2048
"""OpenAI's limit on inputs per request."""


class EmbeddingsRequest(BaseModel):
    """A ``POST /v1/embeddings`` body."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1)]
    # token ids are vocabulary indices: a negative one is the client's error, not the upstream's
    input: str | list[str] | list[NonNegativeInt] | list[list[NonNegativeInt]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(
        cls, v: str | list[str] | list[int] | list[list[int]]
    ) -> str | list[str] | list[int] | list[list[int]]:
        if v == "" or v == []:
            raise ValueError("must not be empty")
        if isinstance(v, list) and len(v) > MAX_INPUTS:
            raise ValueError(f"at most {MAX_INPUTS} inputs are allowed")
        if isinstance(v, list) and any(x == "" or x == [] for x in v):
            raise ValueError("inputs must not be empty")
        return v

    def inputs(self) -> list[Any]:
        """One entry per embedding: a string, or a token array."""
        if isinstance(self.input, str):
            return [self.input]
        if self.input and isinstance(self.input[0], int):
            return [self.input]  # one token array
        return list(self.input)


def parse_embeddings_request(body: bytes) -> EmbeddingsRequest:
    """Validate ``body`` strictly; a 400 naming the field otherwise."""
    req, _ = parse_json_object(body, EmbeddingsRequest)
    return req


def embedding_model(loaded: LoadedPolicy, name: str) -> ModelSpec:
    """The policy's embedding model called ``name``; 404 or 400 naming ``model`` otherwise."""
    model = loaded.policy.model(name)
    if model is None:
        raise NotFound(
            f"The model '{name}' does not exist; GET /v1/models lists what this gateway serves.",
            param="model",
        )
    if model.kind != "embedding":
        raise InvalidRequest(
            f"The model '{name}' is not an embedding model.",
            param="model",
            code="model_not_supported",
        )
    return model


async def _key(services: Services, principal: Principal) -> VirtualKey | None:
    store = services.keys
    if store is None or principal.key_id is None or principal.key_id == MASTER_KEY_ID:
        return None
    key = store.cached(principal.key_id)
    if key is None:
        with contextlib.suppress(KeyNotFound):
            key = await store.get(principal.key_id)
    return key


def estimated_tokens(inputs: list[Any]) -> int:
    """An upper estimate of the input tokens, for the budget reservation."""
    return sum(len(x) if isinstance(x, list) else len(x) // 2 + 2 for x in inputs)


def encode_vector(vector: Any, encoding_format: str) -> list[float] | str:
    """One embedding as JSON floats, or base64 of its little-endian float32 bytes."""
    array = np.asarray(vector, dtype="<f4")
    if encoding_format == "base64":
        return base64.b64encode(array.tobytes()).decode("ascii")
    floats: list[float] = array.tolist()
    return floats


def render(req: EmbeddingsRequest, result: Embedded) -> dict[str, Any]:
    """OpenAI's ``list`` of ``embedding`` objects with ``usage``."""
    data = [
        {"object": "embedding", "index": i, "embedding": encode_vector(v, req.encoding_format)}
        for i, v in enumerate(result.vectors)
    ]
    tokens = result.prompt_tokens
    return {
        "object": "list",
        "data": data,
        "model": result.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


async def _embed(
    services: Services,
    loaded: LoadedPolicy,
    req: EmbeddingsRequest,
    model: ModelSpec,
    verdict: EmbeddingsVerdict | None,
) -> Embedded:
    inputs = req.inputs() if verdict is None else verdict.inputs
    if model.backend == "encoder":
        encoders: LocalEncoders = services.embedders
        return await encoders.embed(inputs, model)
    body = req.model_dump(exclude_none=True)
    if verdict is not None and verdict.redacted:  # what the guard lets a hosted model see
        body["input"] = inputs if isinstance(req.input, list) else inputs[0]
        if verdict.user is not None:
            body["user"] = verdict.user
    if req.encoding_format == "base64":  # decoded here, re-encoded on the way out
        body["encoding_format"] = "float"
    answer, tokens = await hosted_embed(services.http, body, model, loaded.policy)
    rows = sorted(answer["data"], key=lambda d: d.get("index", 0))
    vectors = [
        list(np.frombuffer(base64.b64decode(r["embedding"]), dtype="<f4"))
        if isinstance(r.get("embedding"), str)
        else r.get("embedding")
        for r in rows
    ]
    if tokens is None:
        return Embedded(vectors, estimated_tokens(inputs), model.name, estimated=True)
    return Embedded(vectors, tokens, model.name)


def _served(verdict: EmbeddingsVerdict, req: EmbeddingsRequest) -> ModelSpec:
    """The model the guard chose, checked against what the request needs of it."""
    model = verdict.model
    if model.backend != "encoder":
        return model
    try:
        check_encoder_request(model, verdict.inputs, req.dimensions)
    except InvalidRequest as err:
        if not verdict.substituted:
            raise
        raise InvalidRequest(
            f"This request must stay on local models ({verdict.reason}), and the local "
            f"embedding model '{model.name}' cannot serve it: {err.message}",
            param=err.param,
            code="privacy_pinned_local",
        ) from err
    return model


def _record(
    rid: str,
    principal: Principal,
    loaded: LoadedPolicy,
    model: ModelSpec,
    started: float,
    usage: Usage | None,
    error: RouterError | None,
) -> LedgerRecord:
    cost = model_cost_usd(model, usage) if usage is not None else 0.0
    now_wall, now_mono = time.time(), time.perf_counter()
    return LedgerRecord(
        ts=now_wall - (now_mono - started),
        request_id=rid,
        tenant=principal.tenant,
        key_id=principal.key_id,
        team=principal.team,
        route=None,
        tier=model.tier,
        reason="embeddings",
        score=None,
        model=model.name,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=0,
        estimated=bool(usage and usage.estimated),
        cost_usd=cost,
        counterfactual_usd=cost,  # nothing was routed: no saving to claim
        cache="miss",
        latency_ms=round((now_mono - started) * 1000, 3),
        policy_hash=loaded.hash,
        status=error.status if error is not None else 200,
        error=error.code if error is not None else None,
        stream=False,
        fallback=False,
    )


def observe(
    services: Services,
    model: ModelSpec,
    team: str | None,
    status: int,
    usage: Usage | None,
    cost_usd: float,
    latency_s: float,
) -> None:
    """The request, token and spend metrics chat requests update too (route label ``-``)."""
    m = services.observability.metrics
    team_label = team or NO_LABEL
    try:
        m.requests.get(NO_LABEL, model.name, str(status), "miss").inc()
        m.latency.get(NO_LABEL).observe(latency_s)
        if usage is not None and usage.prompt_tokens:
            m.tokens.get(team_label, model.name, "prompt").inc(usage.prompt_tokens)
        if cost_usd:
            m.spend.get(team_label, model.name).inc(cost_usd)
    except Exception as exc:  # observability must never fail a request
        services.observability.hook_errors += 1
        log.error("observability_hook_failed", error=repr(exc))


async def create_embeddings(request: Request) -> Response:
    """Authenticate, validate, reserve, embed, ledger and answer one embeddings request."""
    services: Services = request.app.state.services
    loaded = services.policies.current
    policy = loaded.policy
    rid = request_id(request)
    headers = {"x-request-id": rid, "x-router-policy": loaded.hash}
    started = time.perf_counter()
    hold: Reservation | None = None
    try:
        principal = await services.auth.authenticate(
            policy.auth, request.headers.get("authorization")
        )
        body = await read_body(request, policy.limits.max_body_bytes, policy.limits.body_timeout_s)
        req = parse_embeddings_request(body)
        model = embedding_model(loaded, req.model)
        key = await _key(services, principal)
        if key is not None and not key.allows(req.model):
            raise PermissionDenied(
                f"Key {key.id} may not use '{req.model}'; allowed: {', '.join(key.models)}.",
                param="model",
                code="model_not_allowed",
            )
        verdict = guard_embeddings(
            policy,
            model,
            req.inputs(),
            single=isinstance(req.input, str),
            user=req.user,
            team=principal.team,
            request_id=rid,
        )
        if verdict is not None:
            headers.update(verdict.headers)
            model = _served(verdict, req)
        elif model.backend == "encoder":
            check_encoder_request(model, req.inputs(), req.dimensions)
        scopes, limits = scopes_for(policy.budgets, key, principal.team)
        if scopes or limits:
            upper = Usage(estimated_tokens(req.inputs()), 0)
            hold = await services.budgets.reserve(
                policy.budgets, scopes, limits, model_cost_usd(model, upper), upper.prompt_tokens
            )
            if hold is not None:
                headers.update(hold.headers)
    except RouterError as err:
        services.observability.rejected(err)
        return error_response(err, headers)
    headers["x-router-model"] = model.name
    try:
        result = await _embed(services, loaded, req, model, verdict)
    except RouterError as err:
        if services.ledger is not None:  # settles the hold to nothing
            services.ledger.finish(_record(rid, principal, loaded, model, started, None, err), hold)
        observe(
            services, model, principal.team, err.status, None, 0.0, time.perf_counter() - started
        )
        log.info("request", request_id=rid, model=model.name, status=err.status, error=err.code)
        return error_response(err, headers)
    usage = Usage(result.prompt_tokens, 0, estimated=result.estimated)
    cost_usd = model_cost_usd(model, usage)
    headers["x-router-cost-usd"] = f"{cost_usd:.8f}"
    if services.ledger is not None:
        services.ledger.finish(_record(rid, principal, loaded, model, started, usage, None), hold)
    observe(services, model, principal.team, 200, usage, cost_usd, time.perf_counter() - started)
    if services.settings.access_log:
        log.info(
            "request",
            request_id=rid,
            policy_hash=loaded.hash,
            endpoint="embeddings",
            model=model.name,
            status=200,
            prompt_tokens=usage.prompt_tokens,
            cost_usd=cost_usd,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
        )
    return JSONBytesResponse(render(req, result), headers=headers)
