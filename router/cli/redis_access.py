"""How the ``router`` commands reach Redis: the one the gateway uses, or a clear one-line error.

Order: ``REDIS_URL`` when set; else the embedded server of a gateway running on the same
``ROUTER_DATA_DIR`` (its URL is published in the data directory); else an embedded server of
the command's own, stopped when the command ends. A Redis that cannot be reached raises
:class:`RedisUnreachable`, which ``router`` prints as one line (no traceback) and exits with 1.
"""

from __future__ import annotations

from router.redis.client import RedisHandle, connect_redis
from router.redis.embedded import EmbeddedRedisError
from router.settings import Settings

HINT = (
    "set REDIS_URL to the gateway's Redis (redis://host:6379/0 or unix:///path/redis.sock), "
    "or run this next to a gateway that serves the same ROUTER_DATA_DIR"
)


class RedisUnreachable(RuntimeError):
    """No Redis could be reached; the message is one line that says what to set."""


async def open_redis(settings: Settings | None = None, *, timeout_s: float = 3.0) -> RedisHandle:
    """A connected :class:`RedisHandle` for a CLI command (see the module docstring).

    ``timeout_s`` bounds the ``PING`` that proves the connection (seconds).
    """
    s = settings or Settings.from_env()
    try:
        handle = await connect_redis(s.redis_url, s.data_dir, share_running=True)
    except (EmbeddedRedisError, ValueError, OSError) as exc:
        raise RedisUnreachable(f"cannot reach Redis ({_first_line(exc)}); {HINT}") from None
    if not await handle.ping(timeout_s):
        await handle.aclose()
        raise RedisUnreachable(f"cannot reach Redis at {handle.url}; {HINT}")
    return handle


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
