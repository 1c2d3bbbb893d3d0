"""Time-to-ready and memory of ``router serve``: start it a few times, report each start.

Each start runs ``router serve --policy POLICY`` in a child process (a private data directory,
so its own embedded Redis), times the wait until ``/readyz`` answers 200, then reads the
resident memory of the process and every one below it (``/proc/PID/status`` VmRSS, and
``smaps_rollup``'s Pss, which splits pages shared between processes, e.g. a read-only mapped
model file)::

    python loadtests/bench_startup.py --starts 3 --fresh-models-dir
    python loadtests/bench_startup.py --starts 2 --request-model local-smollm2
    python loadtests/bench_startup.py --policy loadtests/policies/classifier.yaml --mock \
        --request-model auto

``--mock`` starts the mock upstream first and passes its URL as ``MOCK_UPSTREAM_URL`` (for
policies whose models are the mock, e.g. ``loadtests/policies/classifier.yaml``: the trained
classifier without an in-process local model).

``--fresh-models-dir`` points ``ROUTER_MODELS_DIR`` at an empty temporary folder before the first
start, so start 1 is a first start (every cached build is made) and the others reuse the cache.
Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess


def _proc_kib(pid: int, path: str, field: str) -> int:
    """``field``'s value in KiB from ``/proc/PID/<path>`` (0 when unreadable)."""
    try:
        text = Path(f"/proc/{pid}/{path}").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _parent(pid: int) -> int:
    """The parent's pid from ``/proc/PID/stat`` (0 when unreadable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def tree_memory(root: int) -> list[dict[str, object]]:
    """Name, RSS and PSS (MiB) of ``root`` and every process below it (its workers and the
    embedded Redis, which runs in a process group of its own)."""
    parents = {
        int(e.name): _parent(int(e.name)) for e in Path("/proc").iterdir() if e.name.isdigit()
    }
    tree = {root}
    grew = True
    while grew:
        below = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= below
        grew = bool(below)
    rows: list[dict[str, object]] = []
    for pid in sorted(tree):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
        except OSError:
            continue
        rows.append(
            {
                "pid": pid,
                "cmd": cmd.strip(),
                "rss_mib": round(_proc_kib(pid, "status", "VmRSS") / 1024, 1),
                "pss_mib": round(_proc_kib(pid, "smaps_rollup", "Pss") / 1024, 1),
            }
        )
    return rows


def ask(url: str, model: str) -> None:
    """One short chat completion to ``model`` (so the model's weights are all paged in)."""
    body = {"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]}
    req = urllib.request.Request(
        url + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    deadline = time.monotonic() + 300
    while True:
        try:
            with urllib.request.urlopen(req, timeout=300) as resp:
                resp.read()
            return
        except urllib.error.HTTPError as exc:
            # With several workers /readyz answers from whichever is ready first; another one
            # may still be loading its local model (503) when this request reaches it.
            if exc.code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def one_start(
    policy: Path,
    workers: int,
    settle_s: float,
    request_model: str | None,
    env: dict[str, str] | None = None,
    requests: int = 1,
) -> dict[str, object]:
    """Start the gateway once; its time to ready (s) and the memory of its processes (after
    one request to ``request_model`` when given; with ``workers`` > 1, one request per worker
    is not guaranteed: the kernel picks the worker)."""
    started = time.perf_counter()
    gw = GatewayProcess(policy, env=env, workers=workers, startup_timeout_s=600)
    with gw:
        ready_s = time.perf_counter() - started
        if request_model:
            for _ in range(requests):
                ask(gw.url, request_model)
        time.sleep(settle_s)  # let lazy imports and the first GC settle before reading memory
        procs = tree_memory(gw.pid)
    return {
        "ready_s": round(ready_s, 2),
        "processes": procs,
        "total_rss_mib": round(sum(float(str(p["rss_mib"])) for p in procs), 1),
        "total_pss_mib": round(sum(float(str(p["pss_mib"])) for p in procs), 1),
    }


def main() -> None:
    """Parse arguments, start the gateway ``--starts`` times, print one JSON line per start."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policy", type=Path, default=Path("policies/default.yaml"))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--settle-s", type=float, default=2.0)
    ap.add_argument("--fresh-models-dir", action="store_true")
    ap.add_argument("--request-model", help="send one request to this model before measuring")
    ap.add_argument("--requests", type=int, default=1, help="how many requests to send")
    ap.add_argument("--mock", action="store_true", help="start the mock upstream first")
    args = ap.parse_args()
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if args.fresh_models_dir:
        tmp = tempfile.TemporaryDirectory(prefix="models-")
        os.environ["ROUTER_MODELS_DIR"] = tmp.name
    try:
        with contextlib.ExitStack() as stack:
            env: dict[str, str] = {}
            if args.mock:
                mock = stack.enter_context(MockUpstreamProcess())
                env["MOCK_UPSTREAM_URL"] = mock.url
            for i in range(args.starts):
                row = one_start(
                    args.policy,
                    args.workers,
                    args.settle_s,
                    args.request_model,
                    env,
                    args.requests,
                )
                print(json.dumps({"start": i + 1, "uptime": _load(), **row}), flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _load() -> str:
    """The 1-minute load average (the machine is shared: numbers are noisy)."""
    return Path("/proc/loadavg").read_text().split()[0]


if __name__ == "__main__":
    main()
