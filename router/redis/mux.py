"""One multiplexed Redis connection for the request path's hottest commands.

redis-py's asyncio client checks a connection out of its pool for each command, writes it,
waits for the reply on that connection under a timeout and returns the connection: about 40
µs of the worker's CPU per command with 32 requests in flight on this machine. A gateway
request for ``auto`` makes five such commands on its way (the budget reservation, the exact
cache lookup, the semantic search and the two cache stores). :class:`RedisMux` sends every
command of a worker down one connection, matches replies to callers in order (Redis answers a
connection's commands in the order it received them) and parses them with hiredis: 4-6 µs a
command (``loadtests/bench_redis_client.py``).

It covers only what those callers use (plain commands, ``EVALSHA`` with a script's first
load, ``GET``/``SET``/``ZREM``) on a standalone or embedded Redis without TLS; everything else
keeps redis-py's client. It never re-sends a command (a settle script run twice would count
spend twice). Failures raise redis-py's exceptions, so callers need no new ``except``:

* a reply that is an error: the :class:`redis.exceptions.ResponseError` subclass redis-py
  would raise (``NoScriptError`` for ``NOSCRIPT``, ...);
* no connection, or the connection lost with the command in flight:
  :class:`redis.exceptions.ConnectionError` (the next command connects again);
* no reply within ``timeout_s``: :class:`redis.exceptions.TimeoutError` for every command in
  flight, and the connection is dropped (a reply that comes later cannot be matched).

A caller cancelled while it waits leaves its reply to be read and dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias, cast

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.redis.client import RedisClient


@dataclass(frozen=True, slots=True)
class MuxAddress:
    """Where to connect and how to log in (from a redis-py client's pool settings)."""

    path: str | None = None
    """A unix socket's path; ``host``/``port`` otherwise."""
    host: str = "localhost"
    port: int = 6379
    username: str | None = None
    password: str | None = None
    db: int = 0


def _pack(args: tuple[Any, ...]) -> bytes:
    """One command in RESP (hiredis's stubs type the tuple too narrowly)."""
    packed: bytes = hiredis.pack_command(cast(Any, args))
    return packed


def _error(message: str) -> Exception:
    """The exception redis-py raises for an error reply ``message``."""
    parse: Callable[[str], Exception] = BaseParser.parse_error
    return parse(message)


class _Protocol(asyncio.Protocol):
    """The connection: writes packed commands in batches, resolves the oldest waiter per
    reply."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader(encoding="utf-8")
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        """Every command not answered yet, oldest first: those written, then those queued."""
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.outgoing: list[bytes] = []
        """Commands queued, not written yet (see :meth:`queue`)."""
        self.unanswered = 0
        """Commands written whose replies have not arrived."""
        self._flush_soon = False

    def queue(self, packed: bytes) -> None:
        """Write ``packed`` in the next batch.

        A ``send`` per command cost the worker more CPU than anything else in a request's
        Redis traffic: the syscall, and the wake-up of the server (a cross-CPU interrupt, dear
        in a VM), each. So commands go out in batches, as Nagle's algorithm sends segments:
        while none are unanswered, those of this turn of the event loop go together at its
        end; while a batch is unanswered, new commands wait for its replies and go together
        then. Redis runs one connection's commands in order anyway, so a held command is not
        answered later than it would be behind the batch; the server, too, reads and answers
        each batch at once."""
        self.outgoing.append(packed)
        if not self.unanswered and not self._flush_soon:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write the queued commands (dropped if the connection failed meanwhile: their
        callers already have the failure)."""
        self._flush_soon = False
        out, self.outgoing = self.outgoing, []
        if not self.closed and self.transport is not None and out:
            self.unanswered += len(out)
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while self.unanswered:
            try:
                reply = self.reader.gets()
            except Exception as exc:  # an unparsable reply: the stream cannot be resynced
                self.fail(RedisConnectionError(f"unreadable reply from Redis: {exc!r}"))
                return
            if reply is False:
                return
            self.unanswered -= 1
            future, _ = self.waiting.popleft()
            if future.done():  # its caller was cancelled
                pass
            elif isinstance(reply, hiredis.ReplyError):
                future.set_exception(_error(str(reply)))
            else:
                future.set_result(reply)
            if not self.unanswered and self.outgoing:
                self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError("Connection closed by server."))

    def fail(self, exc: Exception) -> None:
        """Fail every command in flight with ``exc`` and drop the connection."""
        self.closed = True
        self.outgoing.clear()
        self.unanswered = 0
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()


class RedisMux:
    """Commands of one worker over one connection; see the module docstring."""

    def __init__(self, address: MuxAddress, timeout_s: float = 2.0) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._conn: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    @classmethod
    def for_client(cls, client: RedisClient) -> RedisMux | None:
        """A mux to the server ``client`` talks to, when it is a plain standalone one (not a
        cluster, not TLS); None otherwise."""
        pool = getattr(client, "connection_pool", None)
        if pool is None or pool.connection_class not in (Connection, UnixDomainSocketConnection):
            return None
        kw = pool.connection_kwargs
        if kw.get("protocol") not in (None, 2, "2"):
            return None
        timeout = kw.get("socket_timeout")
        return cls(
            MuxAddress(
                path=kw.get("path"),
                host=kw.get("host", "localhost"),
                port=int(kw.get("port", 6379)),
                username=kw.get("username"),
                password=kw.get("password"),
                db=int(kw.get("db", 0) or 0),
            ),
            timeout_s=float(timeout) if timeout else 2.0,
        )

    async def execute_command(self, *args: Any) -> Any:
        """Send one command; its reply (strings decoded as UTF-8), or raise."""
        conn, (packed,) = await self._prepare([args])
        return await self._send(conn, packed)

    async def execute_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send ``commands`` together (one write, as a pipeline) and return each one's reply
        or, in its place, the exception it would raise: a reply error does not stop the
        others. Raises only when none could be sent (no connection, unpackable arguments)."""
        conn, packed = await self._prepare(commands)
        futures = [self._send(conn, p) for p in packed]
        out: list[Any] = []
        for future in futures:
            try:
                out.append(await future)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                out.append(exc)
        return out

    async def _prepare(self, commands: Sequence[Sequence[Any]]) -> tuple[_Protocol, list[bytes]]:
        """The connection (made if needed) and ``commands`` packed in RESP."""
        try:
            packed = [_pack(tuple(args)) for args in commands]
        except TypeError as exc:  # None, a bool, a numpy scalar: redis-py refuses them too
            raise DataError(f"invalid command arguments: {exc}") from exc
        conn = self._conn
        if conn is None or conn.closed:
            conn = await self._connect()
        return conn, packed

    def _send(self, conn: _Protocol, packed: bytes) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        deadline = loop.time() + self.timeout_s
        conn.waiting.append((future, deadline))
        conn.queue(packed)
        if self._watchdog is None:
            self._watchdog = loop.call_at(deadline, self._check)
        return future

    def _check(self) -> None:
        """Time out the commands in flight when the oldest has waited ``timeout_s``; one timer
        per connection, not one per command."""
        self._watchdog = None
        conn = self._conn
        if conn is None or conn.closed or not conn.waiting:
            return
        loop = asyncio.get_running_loop()
        oldest = conn.waiting[0][1]
        if loop.time() >= oldest:
            conn.fail(RedisTimeoutError("Timeout reading from Redis"))
            return
        self._watchdog = loop.call_at(oldest, self._check)

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._conn is not None and not self._conn.closed:
                return self._conn
            loop = asyncio.get_running_loop()
            a = self.address
            try:
                async with asyncio.timeout(self.timeout_s):
                    if a.path is not None:
                        _, conn = await loop.create_unix_connection(_Protocol, a.path)
                    else:
                        _, conn = await loop.create_connection(_Protocol, a.host, a.port)
                    if a.password is not None:
                        login = (a.username, a.password) if a.username else (a.password,)
                        await self._send(conn, _pack(("AUTH", *login)))
                    if a.db:
                        await self._send(conn, _pack(("SELECT", a.db)))
            except (OSError, TimeoutError) as exc:
                raise RedisConnectionError(f"cannot connect to Redis: {exc!r}") from exc
            self._conn = conn
            return conn

    async def get(self, name: str) -> Any:
        """``GET name``."""
        return await self.execute_command("GET", name)

    async def set(self, name: str, value: str | bytes, ex: int | None = None) -> Any:
        """``SET name value [EX ex]``."""
        if ex is None:
            return await self.execute_command("SET", name, value)
        return await self.execute_command("SET", name, value, "EX", ex)

    async def zrem(self, name: str, *values: str) -> Any:
        """``ZREM name value...``."""
        return await self.execute_command("ZREM", name, *values)

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        """``EVALSHA sha numkeys key... arg...``."""
        return await self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    async def script_load(self, script: str) -> str:
        """``SCRIPT LOAD script``: its SHA-1."""
        return str(await self.execute_command("SCRIPT", "LOAD", script))

    def register_script(self, script: str) -> MuxScript:
        """A Lua script run by its SHA-1, loaded on first use (as redis-py's)."""
        return MuxScript(self, script)

    async def aclose(self) -> None:
        """Drop the connection (commands in flight fail)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            conn.fail(RedisConnectionError("connection closed"))


CommandClient: TypeAlias = "RedisClient | RedisMux"
"""A client for the commands :class:`RedisMux` serves: redis-py's, or the mux."""


class MuxScript:
    """A registered script: ``await script(keys=[...], args=[...])``."""

    def __init__(self, mux: RedisMux, source: str) -> None:
        self.mux = mux
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, keys: list[Any] | None = None, args: list[Any] | None = None) -> Any:
        keys, args = keys or [], args or []
        try:
            return await self.mux.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.sha = await self.mux.script_load(self.source)
            return await self.mux.evalsha(self.sha, len(keys), *keys, *args)


async def pipeline(
    client: Any, fast: RedisMux | None, commands: Sequence[Sequence[Any]]
) -> list[Any]:
    """Each of ``commands``' replies or, in its place, its error, in one round trip: through
    ``fast`` (the worker's mux to the same server) when there is one, else as a redis-py
    pipeline of ``client`` (not a transaction). Raises only when nothing could be sent."""
    if fast is not None:
        return await fast.execute_many(commands)
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    results: list[Any] = await pipe.execute(raise_on_error=False)
    return results
