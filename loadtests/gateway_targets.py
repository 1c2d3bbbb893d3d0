"""The three targets of ``compare_gateways.py``: the mock upstream, hybrid-router, LiteLLM's proxy.

Each target is a set of local processes plus the URL and headers a client uses. Everything is
started on loopback and stopped by process group id on exit. :class:`ProcessTree` measures the
resident memory (bytes) and CPU time (seconds) of a target's processes.

LiteLLM runs from its own virtual environment (``loadtests/litellm/.venv`` by default, which the
repository's ``.gitignore`` already covers through its ``.venv/`` rule); :func:`ensure_litellm_venv`
creates it with ``pip install 'litellm[proxy]==1.106.2'`` when it is missing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import yaml

from router.redis.embedded import EmbeddedRedis
from router.testing.gateway_process import GatewayProcess, free_port
from router.testing.mock_process import MockUpstreamProcess

ROOT = Path(__file__).resolve().parents[1]
LITELLM_VERSION = "1.106.2"
LITELLM_VENV = ROOT / "loadtests" / "litellm" / ".venv"
LITELLM_MASTER_KEY = "sk-litellm-bench-master"
HYBRID_POLICY = ROOT / "loadtests" / "policies" / "full.yaml"
BENCH_TEAM = "bench"


@dataclass(frozen=True, slots=True)
class Usage:
    """One sample of a process tree: resident memory in bytes, CPU seconds (user + system)."""

    rss_bytes: int
    cpu_s: float
    processes: int


def _stat(pid: int) -> tuple[int, float, int] | None:
    """(parent pid, CPU seconds user + system, RSS bytes) of ``pid`` from ``/proc``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        statm = Path(f"/proc/{pid}/statm").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    ticks = os.sysconf("SC_CLK_TCK")
    cpu_s = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    rss = int(statm.split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return int(fields[1]), cpu_s, rss


class ProcessTree:
    """A root process and its descendants, measured together (e.g. uvicorn's master + workers).

    Linux only: reads ``/proc``. CPU time of a descendant that exited is kept from its last
    sample, so that the cumulative CPU time never goes back.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu_s: dict[int, float] = {}

    def sample(self) -> Usage:
        """RSS (bytes) and cumulative CPU time (seconds) of the tree right now."""
        stats: dict[int, tuple[int, float, int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                found = _stat(int(entry.name))
                if found is not None:
                    stats[int(entry.name)] = found
        members = {self.pid} if self.pid in stats else set()
        grew = True
        while grew:
            grew = False
            for pid, (ppid, _, _) in stats.items():
                if ppid in members and pid not in members:
                    members.add(pid)
                    grew = True
        for pid in members:
            self._cpu_s[pid] = stats[pid][1]
        rss = sum(stats[pid][2] for pid in members)
        return Usage(rss, sum(self._cpu_s.values()), len(members))


@dataclass
class Target:
    """Where a client sends chat requests, and which processes serve them."""

    name: str
    url: str
    """The full chat completions URL."""
    headers: dict[str, str]
    trees: dict[str, ProcessTree] = field(default_factory=dict)
    """Process trees to measure, by role (``gateway``, ``redis``)."""
    notes: list[str] = field(default_factory=list)


def _wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Block until ``url`` answers 200, the process exits (error), or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_bytes()[-3000:].decode("utf-8", "replace")
            raise RuntimeError(f"process exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} not ready in {timeout_s} s")


def _stop_group(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """SIGTERM the process group we started (its own session), then SIGKILL if needed."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def ensure_litellm_venv(venv: Path = LITELLM_VENV) -> Path:
    """LiteLLM's ``litellm`` executable, creating its virtual environment first when missing."""
    exe = venv / "bin" / "litellm"
    if exe.exists():
        return exe
    print(f"creating {venv} with litellm[proxy]=={LITELLM_VERSION} (a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"litellm[proxy]=={LITELLM_VERSION}"], check=True)
    return exe


@contextlib.contextmanager
def mock_target(latency_ms: float) -> Iterator[tuple[MockUpstreamProcess, Target]]:
    """The mock upstream (one process), also used as the upstream of both gateways."""
    with MockUpstreamProcess(latency_ms=latency_ms) as mock:
        assert mock._proc is not None
        target = Target("direct", mock.url + "/chat/completions", {})
        target.trees["upstream"] = ProcessTree(mock._proc.pid)
        yield mock, target


def export_tree(rev: str, directory: Path) -> Path:
    """``router/`` as committed at ``rev``, extracted under ``directory``; returns the root.

    Run the gateway from it (``PYTHONPATH``) to measure a commit, not a working tree that
    others may be editing.
    """
    root = directory / f"src-{rev}"
    root.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, "router"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


def _describe(rev: str | None) -> str:
    """``commit abc1234`` for a revision, ``working tree`` without one."""
    if rev is None:
        return "working tree"
    sha = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return f"commit {sha or rev}"


def _python_env(source: Path | None, extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra}
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(source), env.get("PYTHONPATH")) if p)
    return env


def policy_for_run(
    directory: Path, source: Path | None, policy: Path = HYBRID_POLICY
) -> tuple[Path, bool]:
    """The benchmark policy ``policy``, written into ``directory``; True when cache lookup is on.

    The ``cache:`` section is dropped (and reported) when the gateway's policy schema has no
    ``cache`` field yet, so that the rest of the comparison still runs.
    """
    probe = "from router.policy.schema import Policy; print('cache' in Policy.model_fields)"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=_python_env(source, {}),
        cwd=source or ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = yaml.safe_load(policy.read_text())
    data["prices_file"] = str((policy.parent / data["prices_file"]).resolve())
    cache_on = out.strip() == "True"
    if not cache_on:
        data.pop("cache", None)
    path = directory / "full.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, cache_on


def create_key(redis_url: str, data_dir: Path, source: Path | None) -> str:
    """A virtual key of team ``bench`` with a (never reached) budget, via ``router keys``."""
    env = _python_env(source, {"REDIS_URL": redis_url, "ROUTER_DATA_DIR": str(data_dir)})
    cmd = [sys.executable, "-m", "router.cli.main", "keys", "create", "--team", BENCH_TEAM]
    cmd += ["--budget-usd", "100000", "--window", "month", "--json"]
    out = subprocess.run(
        cmd, env=env, cwd=source or ROOT, capture_output=True, check=True, timeout=60
    ).stdout
    key: str = orjson.loads(out)["key"]
    return key


@contextlib.contextmanager
def hybrid_target(
    upstream_url: str, workers: int, rev: str | None = None, policy: Path = HYBRID_POLICY
) -> Iterator[Target]:
    """hybrid-router with keys, budgets, ledger and cache lookup, on its own Redis 8.

    ``rev`` (a git revision) runs the gateway's code as committed there instead of the working
    tree's; ``policy`` replaces ``loadtests/policies/full.yaml``.
    """
    with tempfile.TemporaryDirectory(prefix="hr-bench-") as tmp:
        data_dir = Path(tmp)
        source = export_tree(rev, data_dir) if rev else None
        policy_path, cache_on = policy_for_run(data_dir, source, policy)
        with EmbeddedRedis(data_dir, transport="unix") as redis_server:
            key = create_key(redis_server.url, data_dir, source)
            env = {
                "MOCK_UPSTREAM_URL": upstream_url,
                "REDIS_URL": redis_server.url,
                "ROUTER_DATA_DIR": str(data_dir),
                "ROUTER_ACCESS_LOG": "0",
                "ROUTER_LOG_LEVEL": "warning",
            }
            if source is not None:
                env["PYTHONPATH"] = _python_env(source, {})["PYTHONPATH"]
            gw = GatewayProcess(policy_path, env=env, workers=workers, log_path=data_dir / "gw.log")
            with contextlib.chdir(source or ROOT):  # `python -m` puts the cwd first on sys.path
                gw.start()
            try:
                target = Target(
                    "hybrid-router",
                    gw.url + "/chat/completions",
                    {"authorization": f"Bearer {key}"},
                )
                target.trees["gateway"] = ProcessTree(gw.pid)
                target.notes.append(f"gateway code: {_describe(rev)}")
                assert redis_server.pid is not None
                target.trees["redis"] = ProcessTree(redis_server.pid)
                target.notes.append("auth: keys (virtual key), key + team + global budgets")
                target.notes.append("ledger row per request (Redis stream + rollups)")
                target.notes.append(
                    "exact cache lookup + store (temperature 0, unique prompts: all misses)"
                    if cache_on
                    else "cache: NOT in this build's policy schema, so no cache lookup"
                )
                yield target
            finally:
                gw.stop()


def _litellm_config(upstream_url: str, directory: Path) -> Path:
    config = {
        "model_list": [
            {
                "model_name": "mock-local",
                "litellm_params": {
                    "model": "openai/mock-local",
                    "api_base": upstream_url,
                    "api_key": "sk-mock",
                },
            }
        ],
        # the production settings of LiteLLM's docs that apply without a database
        "litellm_settings": {
            "drop_params": True,
            "telemetry": False,
            "set_verbose": False,
            "request_timeout": 600,
        },
        "general_settings": {"master_key": LITELLM_MASTER_KEY},
    }
    path = directory / "litellm.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@contextlib.contextmanager
def litellm_target(upstream_url: str, workers: int, venv: Path = LITELLM_VENV) -> Iterator[Target]:
    """LiteLLM's proxy from its own venv: master key, no database, ``workers`` workers."""
    exe = ensure_litellm_venv(venv)
    with tempfile.TemporaryDirectory(prefix="litellm-bench-") as tmp:
        directory = Path(tmp)
        config = _litellm_config(upstream_url, directory)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS"))}
        env.update(
            {
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_LOG": "ERROR",
                "LITELLM_MODE": "PRODUCTION",
                "DISABLE_ADMIN_UI": "True",
                "PYTHONUNBUFFERED": "1",
            }
        )
        cmd = [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
        # uvicorn kills a worker that does not answer its supervisor within 5 s, which a worker
        # still importing litellm on a busy 2-core machine does not: allow startup to be slow.
        cmd += ["--num_workers", str(workers), "--timeout_worker_healthcheck", "120"]
        log = directory / "litellm.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                base = f"http://127.0.0.1:{port}"
                _wait_http(base + "/health/liveliness", 180.0, proc, log)
                target = Target(
                    "litellm-proxy",
                    base + "/v1/chat/completions",
                    {"authorization": f"Bearer {LITELLM_MASTER_KEY}"},
                )
                target.trees["gateway"] = ProcessTree(proc.pid)
                target.notes.append(
                    f"litellm[proxy]=={LITELLM_VERSION}, master key, no database, "
                    f"--num_workers {workers}"
                )
                yield target
            finally:
                _stop_group(proc)
