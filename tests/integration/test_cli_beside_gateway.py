"""The README's quick start: ``router keys``, ``report`` and ``ledger export`` next to a running
gateway that owns the embedded Redis, and a one-line error when no Redis can be reached."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import subprocess
import sys
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from router.testing.gateway_process import GatewayProcess, free_port
from tests.integration.reports_support import mock_and_gateway, wait_for_records

pytestmark = [pytest.mark.integration, pytest.mark.clock]
ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``router ARGS`` as a user runs it: the environment given, nothing else set for Redis."""
    full = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "ROUTER_DATA_DIR")}
    # This checkout's ``router``, whatever the working directory.
    full["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), full.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "router.cli.main", *args],
        env={**full, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def gateway_on_embedded_redis(tmp: Path, data_dir: Path) -> AbstractContextManager[GatewayProcess]:
    """Mock upstream + ``router serve`` with no ``REDIS_URL``: it starts the embedded Redis."""
    return mock_and_gateway(tmp, {"REDIS_URL": "", "ROUTER_DATA_DIR": str(data_dir)})


def readme_cli_commands() -> list[list[str]]:
    """The ``router`` commands of the README's "Keys and reports while the gateway runs"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Keys and reports while the gateway runs", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    lines = [shlex.split(line, comments=True) for line in block.group(1).splitlines()]
    commands = [words for words in lines if words]
    assert all(words[0] == ".venv/bin/router" for words in commands)
    return [words[1:] for words in commands]


def test_the_readme_commands_work_while_the_gateway_serves(tmp_path: Path) -> None:
    """Issue #16: exactly the README's commands, in a second terminal beside ``router serve``."""
    data_dir = tmp_path / "data"
    env = {"ROUTER_DATA_DIR": str(data_dir)}
    create, listing, report, export = readme_cli_commands()
    assert create[:2] == ["keys", "create"] and listing == ["keys", "list"]
    assert report[0] == "report" and export[:2] == ["ledger", "export"]
    with gateway_on_embedded_redis(tmp_path, data_dir) as gw:
        made = cli(*create, env=env, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        secret = re.search(r"^key: (\S+)$", made.stdout, re.M)
        assert secret is not None, made.stdout

        # The key minted by the CLI works on the gateway: both use the gateway's Redis.
        body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=gw.base_url, timeout=30) as client:
            ok = client.post(
                "/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {secret.group(1)}"},
            )
        assert ok.status_code == 200, ok.text
        url = (data_dir / "redis" / "server.url").read_text().strip()
        wait_for_records(url, 1)

        listed = cli(*listing, env=env, cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert "team=search" in listed.stdout and "budget=$5/day" in listed.stdout

        printed = cli(*report, env=env, cwd=tmp_path)
        assert printed.returncode == 0, printed.stderr
        assert "search" in printed.stdout and "(total)" in printed.stdout

        exported = cli(*export, env=env, cwd=tmp_path)
        assert exported.returncode == 0, exported.stderr
        target = tmp_path / export[export.index("-o") + 1]
        rows = list(csv.DictReader(target.open()))
        assert [(r["team"], r["request_id"]) for r in rows] == [
            ("search", ok.headers["x-request-id"])
        ]

        # The other commands that need Redis find the gateway's too (no second embedded server).
        pending = cli("ledger", "reconcile", "--list", env=env)
        assert pending.returncode == 0 and pending.stdout == "", pending.stderr
        heads = cli("model", "list", "--json", env=env)
        assert heads.returncode == 0, heads.stderr
        assert json.loads(heads.stdout)["versions"] == []

    # With the gateway stopped, the CLI starts the embedded Redis itself on the same data.
    assert not (data_dir / "redis" / "server.url").exists()
    again = cli("keys", "list", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert [k["team"] for k in json.loads(again.stdout)] == ["search"]


@pytest.mark.parametrize(
    "command",
    [
        ("keys", "list"),
        ("report",),
        ("ledger", "export"),
        ("ledger", "reconcile", "--list"),
        ("model", "list"),
    ],
)
def test_no_reachable_redis_is_one_line_and_exit_1(command: tuple[str, ...]) -> None:
    out = cli(*command, env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: cannot reach Redis") and "REDIS_URL" in lines[0]
