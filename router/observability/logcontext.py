"""Request context for log lines: every line logged while serving a request carries its
``request_id`` and ``policy_hash`` (structlog context variables, merged by ``router.logs``).

Background tasks started by the request (ledger writes, the stream drain) copy the context
when they are created, so their lines carry the same ids.
"""

from __future__ import annotations

import structlog


def bind_request(request_id: str, policy_hash: str) -> None:
    """Start a request's log context (dropping whatever the task had bound before)."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id, policy_hash=policy_hash)
