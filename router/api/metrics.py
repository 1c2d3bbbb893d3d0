"""``GET /metrics``: the Prometheus text exposition of this process (or all workers').

Open by default, like most exporters: restrict it at the network level, or set
``ROUTER_METRICS_KEY`` to require ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import hmac
import weakref
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from router.api.responses import error_response
from router.auth import bearer_token
from router.errors import Unauthenticated
from router.observability.hub import local_queues
from router.services import Services
from router.settings import metrics_key


async def metrics(request: Request) -> Response:
    """Render every metric."""
    expected = metrics_key()
    if expected:
        token = bearer_token(request.headers.get("authorization"))
        if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
            return error_response(Unauthenticated("Invalid metrics key.", param="authorization"))
    services: Services = request.app.state.services
    obs = services.observability
    if not obs.attached:
        ref = weakref.ref(services)  # the collector must not keep a closed app alive

        def queues() -> Iterator[tuple[str, int, int]]:
            s = ref()
            if s is not None:
                yield from local_queues(s.policies, s.backends)

        obs.attach(queues)
    body = obs.metrics.render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
