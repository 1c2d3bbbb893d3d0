"""The README's quick start: ``router keys``, ``report`` and ``ledger export`` next to a running
gateway that owns the embedded Redis, and a one-line error when no Redis can be reached."""

from __future__ import annotations

import json
import os
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


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``router ARGS`` as a user runs it: the environment given, nothing else set for Redis."""
    full = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "ROUTER_DATA_DIR")}
    return subprocess.run(
        [sys.executable, "-m", "router.cli.main", *args],
        env={**full, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def gateway_on_embedded_redis(tmp: Path, data_dir: Path) -> AbstractContextManager[GatewayProcess]:
    """Mock upstream + ``router serve`` with no ``REDIS_URL``: it starts the embedded Redis."""
    return mock_and_gateway(tmp, {"REDIS_URL": "", "ROUTER_DATA_DIR": str(data_dir)})


def test_keys_report_and_export_while_the_gateway_serves(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"ROUTER_DATA_DIR": str(data_dir)}
    with gateway_on_embedded_redis(tmp_path, data_dir) as gw:
        made = cli("keys", "create", "--team", "search", "--budget-usd", "5", "--json", env=env)
        assert made.returncode == 0, made.stderr
        secret = json.loads(made.stdout)["key"]

        # The key minted by the CLI works on the gateway: both use the gateway's Redis.
        body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=gw.base_url, timeout=30) as client:
            ok = client.post(
                "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {secret}"}
            )
        assert ok.status_code == 200, ok.text
        url = (data_dir / "redis" / "server.url").read_text().strip()
        wait_for_records(url, 1)

        listed = cli("keys", "list", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        assert [k["team"] for k in json.loads(listed.stdout)] == ["search"]

        report = cli("report", "--since", "1h", "--by", "team", "--format", "json", env=env)
        assert report.returncode == 0, report.stderr
        assert '"search"' in report.stdout and '"requests": 1' in report.stdout

        export = cli("ledger", "export", "--since", "1h", env=env)
        assert export.returncode == 0, export.stderr
        rows = [json.loads(line) for line in export.stdout.splitlines()]
        assert [r["team"] for r in rows] == ["search"]
        assert rows[0]["request_id"] == ok.headers["x-request-id"]

    # With the gateway stopped, the CLI starts the embedded Redis itself on the same data.
    assert not (data_dir / "redis" / "server.url").exists()
    again = cli("keys", "list", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert [k["team"] for k in json.loads(again.stdout)] == ["search"]


@pytest.mark.parametrize("command", [("keys", "list"), ("report",), ("ledger", "export")])
def test_no_reachable_redis_is_one_line_and_exit_1(command: tuple[str, ...]) -> None:
    out = cli(*command, env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: cannot reach Redis") and "REDIS_URL" in lines[0]
