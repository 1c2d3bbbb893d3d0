"""Ways to run the mock upstream: in this event loop, or as a child process.

- :func:`running_mock` — ``async with running_mock(config) as url:`` serves the app with uvicorn
  on a free loopback port inside the running loop (pytest-asyncio tests);
- :class:`MockUpstreamProcess` — ``with MockUpstreamProcess(latency_ms=5) as mock:`` starts
  ``python -m router.testing.mock_upstream`` on a free port and waits until it is ready;
- :func:`serve` — what the CLI runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson
import uvicorn
from uvicorn.config import LOGGING_CONFIG

from router.settings import child_environment
from router.testing.mock_app import QuietStreamCuts, build_mock_app
from router.testing.mock_config import MockConfig

READY_PREFIX = "MOCK_UPSTREAM_READY "


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # connections queue from here on, before the server loop runs
    sock.setblocking(False)
    return sock


def _base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _uvicorn_config(config: MockConfig, log_config: Any) -> uvicorn.Config:
    return uvicorn.Config(
        build_mock_app(config),
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        log_config=log_config,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=1,
    )


async def serve(
    config: MockConfig, host: str, port: int, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve until SIGINT/SIGTERM; ``on_ready`` gets the base URL (without ``/v1``)."""
    sock = _bind(host, port)
    server = uvicorn.Server(_uvicorn_config(config, LOGGING_CONFIG))
    server.config.load()
    logging.getLogger("uvicorn.error").addFilter(QuietStreamCuts())
    if on_ready is not None:
        on_ready(_base_url(sock))
    await server.serve(sockets=[sock])


@contextlib.asynccontextmanager
async def running_mock(
    config: MockConfig | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[str]:
    """Serve the mock in the running event loop; yields its base URL including ``/v1``."""
    sock = _bind(host, 0)
    server = uvicorn.Server(_uvicorn_config(config or MockConfig(), None))
    server.config.load()
    server.lifespan = server.config.lifespan_class(server.config)  # what serve() would set
    quiet = QuietStreamCuts()
    error_logger = logging.getLogger("uvicorn.error")
    error_logger.addFilter(quiet)
    try:
        await server.startup(sockets=[sock])
        loop_task = asyncio.ensure_future(server.main_loop())
        try:
            yield _base_url(sock) + "/v1"
        finally:
            server.should_exit = True
            await loop_task
            await server.shutdown(sockets=[sock])
    finally:
        error_logger.removeFilter(quiet)
        sock.close()


class MockUpstreamProcess:
    """The mock upstream as a child process, for integration and load tests.

    ``MockUpstreamProcess(**knobs)`` takes :class:`MockConfig` fields (or ``config=``). After
    :meth:`start`, ``url`` is the base URL including ``/v1`` and ``base_url`` the one without.
    """

    def __init__(
        self,
        config: MockConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout_s: float = 20.0,
        **knobs: Any,
    ) -> None:
        base = config or MockConfig()
        self.config = base.updated(knobs) if knobs else base
        self.host = host
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self.base_url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._drainer: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL including ``/v1`` (what an OpenAI client's ``base_url`` wants)."""
        if not self.base_url:
            raise RuntimeError("MockUpstreamProcess is not started")
        return self.base_url + "/v1"

    def start(self) -> MockUpstreamProcess:
        """Start the child process and block until it accepts requests."""
        if self._proc is not None:
            return self
        root = str(Path(__file__).resolve().parents[2])
        # The child's environment (inherited, plus this checkout on its path), not a setting.
        env = child_environment()
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        cmd = [sys.executable, "-m", "router.testing.mock_upstream", "--host", self.host]
        cmd += ["--port", str(self.port), "--config-json", self.config.model_dump_json()]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, cwd=root)
        try:
            self.base_url = self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.port = int(self.base_url.rsplit(":", 1)[1])
        return self

    def _wait_ready(self) -> str:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        deadline = time.monotonic() + self.startup_timeout_s
        buffer = b""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while True:
                lines = buffer.split(b"\n")
                for line in lines[:-1]:
                    text = line.decode(errors="replace")
                    if text.startswith(READY_PREFIX):
                        self._drain(proc.stdout)
                        return text[len(READY_PREFIX) :].strip()
                buffer = lines[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"mock upstream not ready in {self.startup_timeout_s} s")
                if not sel.select(timeout=min(left, 0.5)):
                    if proc.poll() is not None:
                        raise RuntimeError(f"mock upstream exited with {proc.returncode}")
                    continue
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError(f"mock upstream exited with {proc.wait()}")
                buffer += chunk

    def _drain(self, stream: IO[bytes]) -> None:
        """Keep reading the child's stdout so that it can never block on a full pipe."""

        def drain() -> None:
            with contextlib.suppress(OSError, ValueError):
                while os.read(stream.fileno(), 65536):
                    pass

        self._drainer = threading.Thread(target=drain, name="mock-upstream-stdout", daemon=True)
        self._drainer.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate the child (SIGTERM, then SIGKILL after ``timeout_s``)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._drainer is not None:
            self._drainer.join(timeout=1.0)
            self._drainer = None
        if proc.stdout is not None:
            proc.stdout.close()
        self.base_url = ""

    def __enter__(self) -> MockUpstreamProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- control surface (blocking; fine from tests) -------------------------------------------

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        data = orjson.dumps(payload) if payload is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return orjson.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        """``GET /_mock/stats``: counts per model/path and the last request bodies."""
        result: dict[str, Any] = self._call("GET", "/_mock/stats")
        return result

    def reset(self, keep_config: bool = False) -> None:
        """``POST /_mock/reset``: clear stats; restore the start-up config unless asked not to."""
        self._call("POST", "/_mock/reset", {"keep_config": keep_config})

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """``POST /_mock/config``: change knobs of the running mock; returns the new config."""
        result: dict[str, Any] = self._call("POST", "/_mock/config", knobs)
        return result
