"""``create_app(settings)``: the Starlette application; its lifespan builds Services."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.api.admin import ROUTES as ADMIN_ROUTES
from router.api.anthropic_messages import count_tokens, messages
from router.api.chat import chat_completions
from router.api.dashboard import ROUTES as REPORT_ROUTES
from router.api.embeddings import create_embeddings
from router.api.feedback import post_feedback
from router.api.health import healthz, readyz
from router.api.metrics import metrics
from router.api.models import list_models
from router.api.openai_responses import create_response, delete_response, get_response
from router.api.openapi import openapi
from router.api.responses import JSONBytesResponse
from router.errors import error_body
from router.policy.store import PolicyStore
from router.services import Services
from router.settings import Settings
from router.tasks import Tasks

log = structlog.get_logger(__name__)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = {
        404: f"No route for {request.method} {request.url.path}.",
        405: f"Method {request.method} is not allowed on {request.url.path}.",
    }.get(exc.status_code, str(exc.detail))
    return JSONBytesResponse(
        error_body(message, "invalid_request_error", None, code),
        status_code=exc.status_code,
        headers=dict(exc.headers or {}),
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled_error", path=request.url.path, error=repr(exc), exc_info=exc)
    return JSONBytesResponse(
        error_body("The gateway failed unexpectedly.", "server_error", None, "internal_error"),
        status_code=500,
    )


class ContainErrors:
    """ASGI middleware: an unexpected exception becomes a 500 in OpenAI's shape and stops here.

    Starlette's outermost error middleware answers 500 and then *re-raises*, and uvicorn closes
    the connection, so the client's next request on that keep-alive connection was reset. Here
    the error is logged once and the connection stays usable.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; contain what it raises."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.error("unhandled_error", path=scope.get("path"), error=repr(exc), exc_info=exc)
            if started:  # headers are out: nothing more can be said to this client
                return
            body = error_body("The gateway failed unexpectedly.", "server_error", None,
                              "internal_error")  # fmt: skip
            await JSONBytesResponse(body, status_code=500)(scope, receive, send)


def create_app(settings: Settings, policies: PolicyStore | None = None) -> Starlette:
    """Build the application. ``policies`` lets tests and the CLI pass a preloaded store."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The one owner of the process's background tasks; Services.aclose drains it.
        services = await Services.start(settings, policies, Tasks())
        app.state.services = services
        try:
            yield
        finally:
            await services.aclose()

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/responses", create_response, methods=["POST"]),
        Route("/v1/embeddings", create_embeddings, methods=["POST"]),
        Route("/v1/responses/{response_id}", get_response, methods=["GET"]),
        Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/v1/feedback", post_feedback, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *ADMIN_ROUTES,
        *REPORT_ROUTES,
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(ContainErrors)],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )


def app_from_env() -> Starlette:
    """The uvicorn factory: settings from the environment (each worker process calls it)."""
    from router.logs import configure_logging
    from router.settings import configure_libraries

    configure_libraries()
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
