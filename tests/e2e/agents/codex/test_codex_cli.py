"""Codex CLI (``codex exec``) against a `router serve` process on the mock upstream.

Codex speaks only the Responses API: a custom provider with ``wire_api = "responses"`` sends a
streamed ``POST /v1/responses`` whose input starts with ``developer`` items and whose tools
include namespaces and a hosted ``web_search``. The pinned version (``package.json`` and
``package-lock.json`` next to this file) is installed with ``npm ci`` into ``.cache/agents/codex``
(gitignored) and reused while the lock file is unchanged. Skipped, saying so, without ``npm``.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[3]
CACHE = ROOT / ".cache" / "agents" / "codex"
MOCK_POLICY = ROOT / "policies" / "examples" / "mock.yaml"
PINNED = ("package.json", "package-lock.json")
INSTALL_TIMEOUT_S = 600
RUN_TIMEOUT_S = 240


def codex_binary() -> Path:
    """The pinned Codex CLI, installed into the cache on first use (or when the pin changed)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the Codex CLI test needs it (apt-get install npm)")
    binary = CACHE / "node_modules" / ".bin" / "codex"
    current = binary.exists() and all(
        (CACHE / name).exists() and filecmp.cmp(HERE / name, CACHE / name, shallow=False)
        for name in PINNED
    )
    if not current:
        CACHE.mkdir(parents=True, exist_ok=True)
        for name in PINNED:
            shutil.copyfile(HERE / name, CACHE / name)
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CACHE,
            check=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    return binary


def write_config(home: Path, base_url: str) -> None:
    """A CODEX_HOME whose config points a custom provider at the gateway, offline and quiet."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f"""model = "auto"
model_provider = "hybrid-router"
check_for_update_on_startup = false

[analytics]
enabled = false

[feedback]
enabled = false

[model_providers.hybrid-router]
name = "hybrid-router"
base_url = "{base_url}"
wire_api = "responses"
env_key = "HYBRID_ROUTER_API_KEY"
request_max_retries = 0
stream_max_retries = 0
"""
    )


@pytest.fixture(scope="module")
def codex() -> Path:
    return codex_binary()


@pytest.fixture(scope="module")
def mock() -> Iterator[MockUpstreamProcess]:
    with MockUpstreamProcess() as m:
        yield m


@pytest.fixture(scope="module")
def gateway(
    mock: MockUpstreamProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    log = tmp_path_factory.mktemp("gw") / "gateway.log"
    with GatewayProcess(MOCK_POLICY, env={"MOCK_UPSTREAM_URL": mock.url}, log_path=log) as gw:
        yield gw


def run_codex(codex: Path, gateway: GatewayProcess, tmp: Path, prompt: str) -> str:
    """``codex exec PROMPT`` in a scratch directory; its stdout (fails on a non-zero exit)."""
    home, work = tmp / "codex-home", tmp / "work"
    write_config(home, gateway.url)
    work.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "CODEX_HOME": str(home),
        "HYBRID_ROUTER_API_KEY": "unused",  # the mock policy has auth: none
        "NO_COLOR": "1",
    }
    done = subprocess.run(
        [str(codex), "exec", "--skip-git-repo-check", "--cd", str(work), prompt],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr + gateway.tail()
    return done.stdout


def upstream_bodies(mock: MockUpstreamProcess) -> list[dict[str, Any]]:
    return [r["body"] for r in mock.stats()["last_requests"]]


def test_codex_answers_through_the_gateway(
    codex: Path, gateway: GatewayProcess, mock: MockUpstreamProcess, tmp_path: Path
) -> None:
    mock.reset()
    out = run_codex(codex, gateway, tmp_path, "say hi")
    assert "Mock reply" in out and "to: say hi" in out
    bodies = upstream_bodies(mock)
    assert len(bodies) == 1
    sent = bodies[0]
    assert sent["stream"] is True and sent["model"] == "mock-hosted"
    # Codex's developer items (its system prompt) arrive as system messages, before the user's
    assert sent["messages"][0]["role"] == "system" and "Codex" in sent["messages"][0]["content"]
    assert sent["messages"][-1] == {"role": "user", "content": "say hi"}
    names = {t["function"]["name"] for t in sent["tools"]}
    assert "exec_command" in names and "web_search" not in names


def test_codex_tool_loop(
    codex: Path, gateway: GatewayProcess, mock: MockUpstreamProcess, tmp_path: Path
) -> None:
    mock.reset()
    out = run_codex(codex, gateway, tmp_path, "call tool exec_command please")
    assert "using tool result" in out
    bodies = upstream_bodies(mock)
    assert len(bodies) == 2
    call = bodies[1]["messages"][-2]
    result = bodies[1]["messages"][-1]
    assert call["role"] == "assistant" and call["tool_calls"][0]["function"]["name"] == (
        "exec_command"
    )
    assert result["role"] == "tool" and result["tool_call_id"] == call["tool_calls"][0]["id"]
