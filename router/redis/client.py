"""One async Redis client for the whole gateway, from ``REDIS_URL`` or an embedded server.

Accepted URLs (``connect_redis``):

======================================================  =========================================
``redis://[user:pass@]host:6379/0``                     standalone, plain TCP
``rediss://host:6380/0?ssl_cert_reqs=required``         standalone, TLS (any redis-py URL option)
``unix:///run/redis.sock?db=0``                         standalone, unix socket
``redis+sentinel://[user:pass@]h1:26379,h2:26379/svc``  Sentinel: master of service ``svc``;
                                                        ``/svc/2`` picks db 2;
                                                        ``?sentinel_password=...`` authenticates
                                                        to the sentinels; ``rediss+sentinel://``
                                                        uses TLS to the master
``redis+cluster://host:7000`` or ``rediss+cluster://``  Cluster (any node as the seed)
``redis://host:7000?cluster=true``                      Cluster, flagged by the query instead
(none)                                                  start :class:`EmbeddedRedis` in
                                                        ``data_dir`` and connect over its socket
======================================================  =========================================

The client decodes replies to ``str`` (``decode_responses=True``): every value the gateway stores
is text (JSON, numbers); vectors are *sent* as FP32 blobs, which needs no decoding.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis.asyncio as aredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ClusterDownError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError

from router.redis.embedded import EmbeddedRedis, running_server_url

RedisClient: TypeAlias = aredis.Redis | RedisCluster
"""What :attr:`RedisHandle.client` is; both share the command API (``get``, ``eval``, ...)."""

_TRUE = {"1", "true", "yes", "on"}


@dataclass(slots=True)
class RedisHandle:
    """The gateway's Redis connection: one client, and the embedded server when one was started.

    ``kind`` is ``"standalone"``, ``"sentinel"``, ``"cluster"`` or ``"embedded"``.
    """

    client: RedisClient
    kind: str
    url: str
    """The URL connected to, with any password removed (safe to log)."""
    embedded: EmbeddedRedis | None = None
    sentinel: Sentinel | None = field(default=None, repr=False)

    @property
    def is_cluster(self) -> bool:
        """Whether keys must share a hash tag to be used together (Lua, MULTI)."""
        return isinstance(self.client, RedisCluster)

    async def ping(self, timeout_s: float = 1.0) -> bool:
        """Whether Redis answers ``PING`` within ``timeout_s`` seconds; never raises (/readyz)."""
        try:
            return bool(await asyncio.wait_for(self.client.ping(), timeout_s))
        except Exception:
            return False

    async def aclose(self) -> None:
        """Close the client's connections, then stop the embedded server if there is one."""
        try:
            with contextlib.suppress(Exception):
                await self.client.aclose()
            if self.sentinel is not None:
                for s in self.sentinel.sentinels:
                    with contextlib.suppress(Exception):
                        await s.aclose()
        finally:
            if self.embedded is not None:
                await self.embedded.astop()


def command_retry(retries: int = 2) -> Retry:
    """Re-send a command after a connection error only, ``retries`` times, with a short backoff.

    A command that timed out may have run: the budget and ledger scripts add to counters, so
    sending one again could reserve or settle a request's cost twice. Timeouts therefore reach
    the caller, whose ``on_store_error`` policy decides. A connection error (a pooled connection
    the server closed, a restart, a Sentinel failover) almost always means the command never ran,
    and one more try on a fresh connection usually succeeds.
    """
    return Retry(
        ExponentialWithJitterBackoff(base=0.05, cap=0.5),
        retries=retries,
        supported_errors=(RedisConnectionError,),
    )


class GatewayCluster(RedisCluster):
    """redis-py's cluster client without its retry of timed-out commands.

    ``RedisCluster`` re-sends a command after any error in ``ERRORS_ALLOW_RETRY`` (10 times by
    default), whatever its ``retry`` object says; that list includes ``TimeoutError``, and a
    re-sent settle script double-counts spend (see :func:`command_retry`).
    """

    ERRORS_ALLOW_RETRY = (RedisConnectionError, ClusterDownError, SlotNotCoveredError)  # type: ignore[assignment]


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _split_flag(url: str, name: str) -> tuple[str, bool]:
    """Remove query flag ``name`` from ``url``; return the URL and whether the flag was true."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    flag = any(k == name and v.lower() in _TRUE for k, v in query)
    rest = [(k, v) for k, v in query if k != name]
    return urlunsplit(parts._replace(query=urlencode(rest))), flag


def _sentinel_client(url: str, options: dict[str, Any]) -> tuple[aredis.Redis, Sentinel]:
    """Parse ``redis+sentinel://`` and return the master client of its service."""
    parts = urlsplit(url)
    tls = parts.scheme.startswith("rediss")
    hostlist = parts.netloc.rsplit("@", 1)[-1]
    hosts: list[tuple[str, int]] = []
    for item in hostlist.split(","):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "26379")
        hosts.append((host.strip("[]"), int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("a redis+sentinel:// URL needs the service name as its path: /mymaster")
    service = path[0]
    db = int(path[1]) if len(path) > 1 else 0
    query = dict(parse_qsl(parts.query))
    sentinel_kwargs: dict[str, Any] = {}
    if "sentinel_password" in query:
        sentinel_kwargs["password"] = query.pop("sentinel_password")
    if "sentinel_username" in query:
        sentinel_kwargs["username"] = query.pop("sentinel_username")
    conn: dict[str, Any] = dict(options)
    conn["db"] = db
    if parts.username:
        conn["username"] = unquote(parts.username)
    if parts.password:
        conn["password"] = unquote(parts.password)
    if tls:
        conn["ssl"] = True
    for key in ("socket_timeout", "socket_connect_timeout"):
        if key in query:
            conn[key] = float(query.pop(key))
    sentinel = Sentinel(hosts, sentinel_kwargs=sentinel_kwargs or None, **conn)
    return sentinel.master_for(service), sentinel


async def connect_redis(
    url: str | None,
    data_dir: Path | str | None = None,
    *,
    decode_responses: bool = True,
    socket_timeout_s: float = 2.0,
    embedded: EmbeddedRedis | None = None,
    share_running: bool = False,
) -> RedisHandle:
    """Connect to ``url`` (see the module docstring for the forms), or start an embedded server.

    With ``url=None`` an :class:`EmbeddedRedis` in ``data_dir`` (``None``: the default data
    directory, ``$ROUTER_DATA_DIR``) is started, or ``embedded`` when given, and stopped by
    :meth:`RedisHandle.aclose`. With ``share_running``, an embedded server that another process
    (a running gateway) already serves on ``data_dir`` is used instead, and left running. Call
    from the event loop's thread. The connection is not checked here; call
    :meth:`RedisHandle.ping`. ``socket_timeout_s`` bounds every command (seconds).
    """
    options: dict[str, Any] = {
        "decode_responses": decode_responses,
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": socket_timeout_s,
        "health_check_interval": 30,
        "retry": command_retry(),
        # No CLIENT SETINFO per new connection: redis-py resolves its own version from package
        # metadata each time, a measurable cost when connections churn under load.
        "driver_info": None,
    }
    if url is None or not url.strip():
        running = None
        if share_running and embedded is None:
            running = await asyncio.to_thread(running_server_url, data_dir)
        if running is not None:
            return RedisHandle(aredis.Redis.from_url(running, **options), "standalone", running)
        server = embedded or EmbeddedRedis(data_dir)
        if not server.running:
            await server.astart()
        client = aredis.Redis.from_url(server.url, **options)
        return RedisHandle(client, "embedded", server.url, embedded=server)
    url = url.strip()
    scheme = urlsplit(url).scheme.lower()
    safe = redact_url(url)
    if scheme in ("redis+sentinel", "rediss+sentinel"):
        master, sentinel = _sentinel_client(url, options)
        return RedisHandle(master, "sentinel", safe, sentinel=sentinel)
    plain, flagged = _split_flag(url, "cluster")
    if scheme in ("redis+cluster", "rediss+cluster") or flagged:
        base = urlsplit(plain)
        base = base._replace(scheme=base.scheme.lower().replace("+cluster", ""))
        options.pop("health_check_interval")
        cluster = GatewayCluster.from_url(urlunsplit(base), **options)
        return RedisHandle(cluster, "cluster", safe)
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(
            f"unsupported Redis URL scheme {scheme!r}: use redis://, rediss://, unix://, "
            "redis+sentinel:// or redis+cluster://"
        )
    return RedisHandle(aredis.Redis.from_url(url, **options), "standalone", safe)
