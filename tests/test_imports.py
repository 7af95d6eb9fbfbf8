"""The package reads downhill: no import cycles between fds modules (module-level and function-level imports
alike, read from the source), so each stage can be understood from the ones below it, and no stage reaches
into another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for f in (SRC / "fds").rglob("*.py"):
        name = ".".join(f.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = f
    return out


def import_graph() -> dict[str, set[str]]:
    """fds module → the fds modules it imports anywhere in its source (``from pkg import submodule`` counts as the
    submodule only)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, f in mods.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = {f"{node.module}.{a.name}" for a in node.names} & set(mods)
                deps |= subs or ({node.module} & set(mods))
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names} & set(mods)
        graph[name] = deps - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    graph = import_graph()
    assert "fds.facemodel.uvchart" in graph["fds.facemodel.regions"]  # the graph sees the imports
    assert cycles(graph) == []


def _stage(module: str) -> str:
    """``fds.data.scans`` → ``data``; a top-level module is its own stage (``fds.pipeline`` → ``pipeline``)."""
    return module.split(".")[1] if module.count(".") else module


def private_imports() -> list[str]:
    """``module: from other import _name`` for every private name an fds module imports from another stage."""
    mods = _modules()
    found = []
    for name, f in sorted(mods.items()):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fds") and node.level == 0:
                for a in node.names:
                    if a.name.startswith("_") and _stage(node.module) != _stage(name):
                        found.append(f"{name}: from {node.module} import {a.name}")
    return found


def test_no_stage_imports_another_stages_private_names():
    assert _stage("fds.data.scans") == "data" and _stage("fds.pipeline") == "pipeline"
    assert private_imports() == []
