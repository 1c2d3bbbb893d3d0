"""``POST /v1/feedback``: a rating of one earlier request, stored next to its ledger row.

Body: ``{"request_id": "...", "score": 4.5}`` or ``{"request_id": "...", "thumbs": "up"}``
(either or both), with optional ``"needed_strong": true`` (the answer needed the strong model)
and ``"comment"``. The caller authenticates like a chat request and can rate only its own
tenant's requests. Answers 200 with the stored row, 400 naming the bad field, 404 for a request
id the gateway does not know (or no longer keeps), 503 when Redis is unreachable.
"""

from __future__ import annotations

import orjson
from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from router.api.body import read_body
from router.api.responses import JSONBytesResponse, error_response
from router.errors import InvalidRequest, NotFound, RouterError, ServiceUnavailable
from router.observability.feedback import Feedback, FeedbackUnavailable
from router.observability.logcontext import bind_request
from router.protocol.body import invalid_request_from
from router.protocol.feedback import FeedbackBody
from router.protocol.jsonsafe import check_numbers
from router.services import Services

MAX_BODY_BYTES = 16 * 1024


def parse_feedback(body: bytes) -> Feedback:
    """Validate a feedback body, or raise :class:`InvalidRequest` naming the field."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The body is not valid JSON: {exc}.", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    check_numbers(body)
    try:
        fb = FeedbackBody.model_validate(data)
    except ValidationError as exc:
        raise invalid_request_from(exc) from exc
    if fb.score is None and fb.thumbs is None and fb.needed_strong is None:
        raise InvalidRequest(
            "Give at least one of 'score', 'thumbs' or 'needed_strong'.",
            param="score",
            code="missing_required_parameter",
        )
    return Feedback(fb.request_id, fb.score, fb.thumbs, fb.needed_strong, fb.comment)


async def post_feedback(request: Request) -> Response:
    """Store feedback on an earlier request of the caller's tenant."""
    services: Services = request.app.state.services
    loaded = services.policies.current
    policy = loaded.policy
    obs = services.observability
    try:
        principal = await services.auth.authenticate(
            policy.auth, request.headers.get("authorization")
        )
        body = await read_body(request, MAX_BODY_BYTES, policy.limits.body_timeout_s)
        fb = parse_feedback(body)
        bind_request(fb.request_id, loaded.hash)
        try:
            facts = await obs.feedback.lookup(principal.tenant, fb.request_id)
            if facts is None:
                raise NotFound(
                    f"No request with id '{fb.request_id}' is known to this gateway "
                    "(unknown, failed, or older than the feedback retention).",
                    param="request_id",
                    code="request_not_found",
                )
            ttl_s = int(policy.observability.feedback.retention_days * 86400)
            row = await obs.feedback.put(principal.tenant, facts, fb, ttl_s)
        except (FeedbackUnavailable, RedisError, OSError, TimeoutError) as exc:
            raise ServiceUnavailable(
                "The feedback store (Redis) is unavailable.", code="feedback_store_unavailable"
            ) from exc
    except RouterError as err:
        return error_response(err)
    _count(services, fb)
    return JSONBytesResponse(
        {
            "object": "feedback",
            "request_id": fb.request_id,
            "model": row.get("model"),
            "tier": row.get("tier") or None,
            "routing_score": float(row["score"]) if row.get("score") else None,
            "rating": fb.rating,
            "thumbs": fb.thumbs,
            "needed_strong": fb.needed_strong,
        }
    )


def _count(services: Services, fb: Feedback) -> None:
    m = services.observability.metrics.feedback
    if fb.thumbs is not None:
        m.get(fb.thumbs).inc()
    if fb.rating is not None:
        m.get("score").inc()
    if fb.needed_strong:
        m.get("needed_strong").inc()
