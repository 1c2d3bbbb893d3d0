"""No import cycles among the modules of ``router/``, counting every import the code writes.

The graph is built with ``ast`` from the source (nothing is imported): module-level imports,
imports inside functions and imports under ``if TYPE_CHECKING:`` all count, because a cycle
that only type checking or a late import hides is still two modules that cannot be understood,
tested or moved one without the other. Importing ``router.a.b`` also depends on the package
``router.a`` (its ``__init__`` runs first).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()
"""Cycles that another branch's move removes (each entry says which; none today)."""


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root: Path) -> dict[str, Path]:
    return {_module_name(p, root): p for p in (root / "router").rglob("*.py")}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module of ``router/``."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """``module -> modules it imports`` for every module under ``<root>/router/``."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets: list[str] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = mod if is_pkg else mod.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                targets.append(base)
                targets.extend(f"{base}.{alias.name}" for alias in node.names)
        for target in targets:
            found = _resolve(target, modules)
            while found is not None and found != mod:
                if mod.startswith(found + "."):  # its own package: already being imported
                    break
                graph[mod].add(found)
                parent = found.rpartition(".")[0]  # importing a.b.c runs a.b's __init__ too
                found = parent if parent in modules and not mod.startswith(parent + ".") else None
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(frozenset(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_type_checking_and_function_level_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "router"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from router.b import B\n"
    )
    (pkg / "b.py").write_text("def f() -> None:\n    from . import c\n")
    (pkg / "c.py").write_text("import router.a\n")
    graph = import_graph(tmp_path)
    assert graph["router.a"] == {"router.b"} and graph["router.b"] == {"router.c"}
    assert cycles(graph) == [frozenset({"router.a", "router.b", "router.c"})]
    real = import_graph()
    assert "router.policy.schema" in real["router.policy.load"]
    # ``registry.prepare`` imports litellm's backend inside a function
    assert "router.backends.litellm_backend" in real["router.backends.registry"]


def test_no_module_imports_itself_through_others() -> None:
    found = [c for c in cycles(import_graph()) if c not in KNOWN_CYCLES]
    assert found == [], [sorted(c) for c in found]


def test_services_are_used_only_by_the_app_the_api_and_the_pipeline() -> None:
    allowed = ("router.app", "router.api", "router.pipeline", "router.services")
    users = sorted(
        m
        for m, deps in import_graph().items()
        if "router.services" in deps and not m.startswith(allowed)
    )
    assert users == []


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """``graph`` folded into the packages (or top-level modules) directly under ``router``."""

    def top(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2])

    out: dict[str, set[str]] = {}
    for mod, deps in graph.items():
        if mod == "router":
            continue
        me = top(mod)
        out.setdefault(me, set()).update(top(d) for d in deps if d != "router" and top(d) != me)
    for deps in list(out.values()):
        for d in deps:
            out.setdefault(d, set())
    return out


def test_no_package_imports_itself_through_others() -> None:
    """The packages form layers: no two of them import each other, even through others."""
    found = cycles(package_graph(import_graph()))
    assert found == [], [sorted(c) for c in found]
