"""The gateway as a child process (``router serve``), for integration and load tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from router.settings import child_environment


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class GatewayProcess:
    """``router serve`` in a child process; waits until ``/readyz`` answers 200.

    ``env`` is added to the current environment (e.g. ``MOCK_UPSTREAM_URL``, ``REDIS_URL``).
    """

    def __init__(
        self,
        policy: str | Path,
        *,
        env: dict[str, str] | None = None,
        workers: int = 1,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: Path | None = None,
        startup_timeout_s: float = 60.0,
    ) -> None:
        self.policy = Path(policy)
        self.env = dict(env or {})
        self.workers = workers
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: object = None
        self._data_dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the gateway."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The base URL for OpenAI clients (with ``/v1``)."""
        return self.base_url + "/v1"

    @property
    def pid(self) -> int:
        """The child's process id."""
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> GatewayProcess:
        """Start the process and block until it is ready."""
        # The child's environment (it reads its settings from there), not a setting of ours.
        env = child_environment({**self.env, "PYTHONUNBUFFERED": "1"})
        if not env.get("ROUTER_DATA_DIR"):
            # A private data directory (embedded Redis, ledger spool): no state shared with
            # other runs or a developer's data.
            self._data_dir = tempfile.TemporaryDirectory(prefix="gw-data-")
            env["ROUTER_DATA_DIR"] = self._data_dir.name
        cmd = [
            sys.executable,
            "-m",
            "router.cli.main",
            "serve",
            "--policy",
            str(self.policy),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        out = self.log_path.open("wb") if self.log_path else subprocess.DEVNULL
        self._log = out
        self._proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self._proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(self.base_url + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"gateway not ready in {self.startup_timeout_s} s: {self.tail()}")

    def tail(self, n_bytes: int = 3000) -> str:
        """The end of the process's log, when it logs to a file."""
        if self.log_path is None or not self.log_path.exists():
            return "(no log file)"
        return self.log_path.read_bytes()[-n_bytes:].decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash, for failure tests)."""
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=10)

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the process group, wait, then SIGKILL if needed."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        close = getattr(self._log, "close", None)
        if callable(close):
            close()
        self._proc = None
        if self._data_dir is not None:
            self._data_dir.cleanup()
            self._data_dir = None

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
