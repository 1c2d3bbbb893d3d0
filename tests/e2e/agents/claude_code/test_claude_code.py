"""Claude Code (``claude -p``) against ``router serve`` on the mock upstream.

Claude Code speaks ``POST /v1/messages?beta=true``: streamed, with its tool set, ``anthropic-beta``
headers, adaptive thinking, mid-conversation system turns and ``cache_control`` breakpoints.
The version is pinned by ``package.json``/``package-lock.json`` here and installed with
``npm ci`` into ``.cache/agents/claude_code`` (gitignored), reused while the lock file is
unchanged. It runs headless and offline: a temporary HOME and CLAUDE_CONFIG_DIR, telemetry,
updates and non-essential traffic off. Skipped only where ``npm`` is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.messages_support import Stack, messages_stack

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[3]
CACHE = ROOT / ".cache" / "agents" / "claude_code"
NPM_TIMEOUT_S = 600
RUN_TIMEOUT_S = 180

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed"),
]


def install_claude_code() -> Path:
    """The pinned ``claude`` binary, installed with ``npm ci`` unless the cache is current."""
    lock = (HERE / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock + (HERE / "package.json").read_bytes()).hexdigest()
    stamp = CACHE / ".installed-lock-sha256"
    binary = CACHE / "node_modules" / ".bin" / "claude"
    if binary.exists() and stamp.exists() and stamp.read_text() == digest:
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(HERE / name, CACHE / name)
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=CACHE,
        check=True,
        timeout=NPM_TIMEOUT_S,
        capture_output=True,
    )
    stamp.write_text(digest)
    return binary


@pytest.fixture(scope="module")
def claude() -> Path:
    return install_claude_code()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with messages_stack(tmp_path_factory.mktemp("claude-code")) as s:
        yield s


def run_claude(
    claude: Path, stack: Stack, home: Path, prompt: str, *args: str, model: str = "mock-hosted"
) -> dict[str, Any]:
    """``claude -p PROMPT --output-format json ARGS`` pointed at the gateway; its result."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": stack.gateway.base_url,
        "ANTHROPIC_API_KEY": stack.secret,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_SMALL_FAST_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_BUG_COMMAND": "1",
    }
    done = subprocess.run(
        [str(claude), "-p", prompt, "--output-format", "json", *args],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == (1 if result.get("is_error") else 0), done.stderr[-2000:]
    return result


def test_prompt_is_answered_and_billed(claude: Path, stack: Stack, tmp_path: Path) -> None:
    before = len(stack.ledger())
    out = run_claude(claude, stack, tmp_path, "Say hello", "--max-turns", "1")
    assert out["is_error"] is False and out["subtype"] == "success"
    assert out["result"].startswith("Mock reply")
    rows = stack.ledger()[before:]
    assert rows and all(r.status == 200 and r.stream and not r.estimated for r in rows)
    assert all(r.cost_usd > 0 for r in rows)
    # what Claude Code counted is what the ledger billed (input includes cache reads/writes)
    usage = out["usage"]
    inputs = (
        usage["input_tokens"]
        + usage["cache_read_input_tokens"]
        + usage["cache_creation_input_tokens"]
    )
    assert inputs == sum(r.prompt_tokens for r in rows)
    assert usage["output_tokens"] == sum(r.completion_tokens for r in rows)


def test_tool_call_round_trip(claude: Path, stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("remember the milk\n")
    before = len(stack.ledger())
    out = run_claude(
        claude,
        stack,
        tmp_path,
        "call tool Read on notes.txt",
        "--tools",
        "Read",
        "--allowedTools",
        "Read",
        "--max-turns",
        "3",
    )
    assert out["is_error"] is False, out
    assert "using tool result" in out["result"]
    assert out["num_turns"] >= 2
    upstream = stack.mock_stats()["last_requests"][-1]["body"]
    tool_results = [m for m in upstream["messages"] if m["role"] == "tool"]
    assert tool_results, upstream["messages"][-3:]
    assert len(stack.ledger()) - before >= 2


def test_context_overflow_is_recognised_as_prompt_too_long(
    claude: Path, stack: Stack, tmp_path: Path
) -> None:
    before = stack.mock_stats()["total_requests"]
    out = run_claude(claude, stack, tmp_path, "Say hello", "--max-turns", "1", model="small-only")
    assert out["is_error"] is True and out["api_error_status"] == 400
    assert out["terminal_reason"] == "prompt_too_long"  # Claude Code read Anthropic's wording
    assert stack.mock_stats()["total_requests"] == before
