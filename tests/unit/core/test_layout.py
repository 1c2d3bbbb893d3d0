"""The package layout's floors: what the policy and the wire protocol may import, and that the
runtime imports no lab code.

``router.policy`` and ``router.protocol`` are the ground floor: every stage imports them, so
they may import no stage package (a stage's policy section lives in ``router.policy.sections``).
Read from the source (every ``import`` statement, those under ``TYPE_CHECKING`` included), so
the test needs no import side effects.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROUTER = Path(__file__).resolve().parents[3] / "router"
GROUND_FLOOR = {
    "policy": ("router.policy", "router.protocol", "router.settings", "router.errors"),
    "protocol": ("router.protocol", "router.errors", "router.keys.requests"),
}
"""For each ground-floor package, the router modules (and their children) it may import."""
OFF_RUNTIME = ("cli", "lab", "testing")
"""Packages the gateway never imports: they alone may import ``router.lab``."""


def router_imports(path: Path) -> set[str]:
    """The ``router.*`` modules that ``path`` imports anywhere in its body."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("router"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("router"):
            out.add(str(node.module))
    return out


@pytest.mark.parametrize("package", sorted(GROUND_FLOOR))
def test_ground_floor_imports_no_stage_package(package: str) -> None:
    allowed = GROUND_FLOOR[package]
    bad = {
        f"{path.relative_to(ROUTER.parent)}: {module}"
        for path in sorted((ROUTER / package).rglob("*.py"))
        for module in router_imports(path)
        if not any(module == a or module.startswith(a + ".") for a in allowed)
    }
    assert bad == set()


def test_runtime_imports_no_lab_code() -> None:
    bad = {
        f"{path.relative_to(ROUTER.parent)}: {module}"
        for path in sorted(ROUTER.rglob("*.py"))
        if path.relative_to(ROUTER).parts[0] not in OFF_RUNTIME
        for module in router_imports(path)
        if module == "router.lab" or module.startswith("router.lab.")
    }
    assert bad == set()
