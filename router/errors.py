"""The gateway's exception tree, and the one place that maps it to an HTTP response.

Every failure a client can see is a :class:`RouterError`. Its subclasses fix the HTTP status and
OpenAI's ``error.type``; the instance carries the message, the offending field (``param``) and a
machine-readable ``code``. :func:`error_body` renders OpenAI's error shape.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RouterError(Exception):
    """Base of every error the gateway reports to a client."""

    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """OpenAI's error shape for this error."""
        return error_body(self.message, self.error_type, self.param, self.code)


def error_body(
    message: str, error_type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """Build ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


# ---- client errors -------------------------------------------------------------------------


class InvalidRequest(RouterError):
    """Malformed JSON, a field of the wrong type, or a request the policy cannot serve."""

    status = 400
    error_type = "invalid_request_error"
    default_code = "invalid_request"


class ContextLengthExceeded(InvalidRequest):
    """No model the request may go to can hold its prompt and output limit.

    OpenAI's ``context_length_exceeded`` code: clients that trim and retry recognise it.
    ``tokens`` is the gateway's count of the request, ``limit_tokens`` the largest window it
    was checked against.
    """

    default_code = "context_length_exceeded"

    def __init__(self, message: str, *, tokens: int, limit_tokens: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.tokens = tokens
        self.limit_tokens = limit_tokens


class Unauthenticated(RouterError):
    """Missing or invalid API key."""

    status = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(RouterError):
    """The key may not use this model, route or override."""

    status = 403
    error_type = "permission_error"
    default_code = "permission_denied"


class NotFound(RouterError):
    """Unknown model, route or resource."""

    status = 404
    error_type = "invalid_request_error"
    default_code = "model_not_found"


class RequestTimeout(RouterError):
    """The client did not send its whole body within the policy's ``limits.body_timeout_s``."""

    status = 408
    error_type = "invalid_request_error"
    default_code = "request_timeout"


class ClientClosed(RouterError):
    """The client went away before its request was read (nginx's 499; nobody receives it)."""

    status = 499
    error_type = "invalid_request_error"
    default_code = "client_disconnected"


class PayloadTooLarge(RouterError):
    """The request body is larger than the policy's ``limits.max_body_bytes``."""

    status = 413
    error_type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimited(RouterError):
    """A gateway rate limit (requests or tokens per minute) was hit."""

    status = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class BudgetExceeded(RouterError):
    """A spend budget is exhausted; retrying will not help until the window resets."""

    status = 429
    error_type = "insufficient_quota"
    default_code = "budget_exceeded"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("x-should-retry", "false")


class BudgetBusy(BudgetExceeded):
    """Only other requests' in-flight holds leave no room: retry after ``retry-after``."""

    error_type = "rate_limit_error"
    default_code = "budget_busy"

    def __init__(self, message: str, *, retry_after_s: int, **kwargs: Any) -> None:
        RouterError.__init__(self, message, **kwargs)
        self.headers["x-should-retry"] = "true"
        self.headers["retry-after"] = str(retry_after_s)


class ServiceUnavailable(RouterError):
    """The gateway cannot serve right now (not ready, queue full, budget store down)."""

    status = 503
    error_type = "server_error"
    default_code = "service_unavailable"


# ---- upstream errors -----------------------------------------------------------------------


class UpstreamError(RouterError):
    """An upstream model failed. ``retryable`` says whether another attempt may succeed."""

    status = 502
    error_type = "upstream_error"
    default_code = "upstream_error"

    def __init__(self, message: str, *, model: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.model = model


class UpstreamRateLimited(UpstreamError):
    """The upstream answered 429."""

    status = 429
    error_type = "rate_limit_error"
    default_code = "upstream_rate_limited"
    retryable = True


class UpstreamServerError(UpstreamError):
    """The upstream answered 5xx."""

    status = 502
    default_code = "upstream_server_error"
    retryable = True


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer within the target's timeout."""

    status = 504
    error_type = "timeout_error"
    default_code = "upstream_timeout"
    retryable = True


class UpstreamConnectionError(UpstreamError):
    """The upstream could not be reached."""

    status = 502
    default_code = "upstream_unreachable"
    retryable = True


class UpstreamBadRequest(UpstreamError):
    """The upstream rejected the request as invalid (4xx other than 429); not retried."""

    status = 400
    error_type = "invalid_request_error"
    default_code = "upstream_bad_request"


class UpstreamAuthError(UpstreamError):
    """The upstream refused the gateway's credentials: a deployment problem, not the client's."""

    status = 502
    default_code = "upstream_auth_failed"


class StreamInterrupted(UpstreamError):
    """The upstream stream ended before its final chunk."""

    status = 502
    default_code = "stream_interrupted"
    retryable = True


RETRY_CLASSES: dict[str, type[UpstreamError]] = {
    "rate_limit": UpstreamRateLimited,
    "server_error": UpstreamServerError,
    "timeout": UpstreamTimeout,
    "connection": UpstreamConnectionError,
    "interrupted": StreamInterrupted,
}
"""Names used by a policy's ``retry.on`` list, mapped to the errors they cover."""


def upstream_error_for_status(
    status: int, message: str, *, model: str | None = None
) -> UpstreamError:
    """Translate an upstream HTTP status into the gateway's error tree."""
    if status == 429:
        return UpstreamRateLimited(message, model=model)
    if status in (401, 403):
        return UpstreamAuthError(message, model=model)
    if status == 408:
        return UpstreamTimeout(message, model=model)
    if 400 <= status < 500:
        return UpstreamBadRequest(message, model=model)
    return UpstreamServerError(message, model=model)
