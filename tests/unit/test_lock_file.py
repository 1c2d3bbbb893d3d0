"""The lock files pin what ``pyproject.toml`` asks for, with hashes (issue #16).

``make install`` installs ``requirements/lock.txt`` with ``--require-hashes --no-deps``: a
dependency added to ``pyproject.toml`` but not to the lock would be missing at run time, and
a pin outside its range would be a version no user of ``pip install`` gets.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "lock.txt"
NO_DEPS = ROOT / "requirements" / "no-deps.txt"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
# The lock's target (Makefile `lock`: Python 3.11 on Linux x86_64).
LOCK_ENV = {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux"}


def pins(path: Path) -> dict[str, str]:
    """Package (canonical name) -> pinned version; asserts every pin carries a hash."""
    out: dict[str, str] = {}
    blocks = re.split(r"\n(?=\S)", path.read_text())
    for block in blocks:
        m = _PIN.match(block)
        if m is None:
            continue
        assert "--hash=sha256:" in block, f"{m.group(1)} is pinned without a hash in {path.name}"
        out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def direct_requirements() -> list[Requirement]:
    """``dependencies`` and the ``dev`` extra that apply on the lock's target."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    reqs = [Requirement(t) for t in texts]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(LOCK_ENV)]


def test_every_direct_dependency_and_dev_tool_is_pinned_in_range() -> None:
    locked = pins(LOCK) | pins(NO_DEPS)
    assert len(locked) > 100  # the whole closure, not the direct dependencies only
    for req in direct_requirements():
        name = canonicalize_name(req.name)
        if name == "torch":  # installed first from TORCH (the CPU wheel), left out of the lock
            continue
        assert name in locked, f"{req.name} is in pyproject.toml but not in the lock"
        assert req.specifier.contains(locked[name], prereleases=True), (req, locked[name])
    for tool in ("ruff", "mypy", "pytest", "pytest-asyncio", "hypothesis", "time-machine"):
        assert tool in locked, tool


def test_torch_is_the_pinned_cpu_wheel_and_not_in_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    torch = re.search(r"^TORCH\s*\?=\s*torch==(\S+)$", makefile, re.M)
    assert torch is not None
    constraints = (ROOT / "requirements" / "constraints.txt").read_text().split()
    assert f"torch=={torch.group(1)}" in constraints
    assert "torch" not in pins(LOCK)
