"""The package reads downhill: no import cycles between fds modules (module-level and function-level imports
alike, read from the source), every import goes to the same or a lower layer of an explicit stack (data flows
photo → proxy → UV maps → predictor → maps → meshes; inference, evaluation, training and the viewer stand
beside each other on top), so each stage can be understood from the ones below it, and no stage reaches into
another's private names."""

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


#: The stages of fds (packages and top-level modules, as :func:`_stage` names them), bottom layer first. A module
#: may import its own layer or a lower one, never a higher one. A new module gets a place here on purpose.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("fds", "fileio", "threads", "memory", "progress", "loggers", "assets", "resources"),  # utilities
    ("render",),  # rasteriser, cameras, SH shading, normals: pure torch
    ("mesh",),  # MeshData, reading OBJ, subdividing and baking a displacement map
    ("facemodel",),  # face models, their UV chart, landmark frame and regions
    ("proxy",),  # photo → landmarks → fitted proxy → UV texture
    ("data",),  # training data: procedural and photo-level scans, wild photos, patches
    ("metrics",),  # the metric functions of loss, validation and evaluation
    ("models",),  # networks, losses, the Lightning module, checkpoints
    ("synthesis",),  # full-map detail from patches
    ("detail",),  # DetailPredictor: a checkpoint, UV texture → UV displacement map
    ("export",),  # maps and mesh files out, previews
    ("inputs", "outputs", "reports", "evaluation_image", "evaluation_photos", "evaluation_photo_level"),  # run parts
    ("pipeline", "evaluation", "training", "view"),  # the runs: infer, eval, train, view
    ("demo", "cli", "__main__"),  # entry points
)
#: the runs stand beside each other: none imports another
RUNS = ("pipeline", "evaluation", "training", "view")


def layer_index(layers: tuple[tuple[str, ...], ...] = LAYERS) -> dict[str, int]:
    return {stage: i for i, layer in enumerate(layers) for stage in layer}


def upward_imports(graph: dict[str, set[str]], layers: tuple[tuple[str, ...], ...] = LAYERS) -> list[str]:
    """``module (layer i) → module (layer j > i)`` for every import that goes up the stack."""
    level = layer_index(layers)
    return sorted(f"{m} ({level[_stage(m)]}) → {d} ({level[_stage(d)]})" for m, deps in graph.items() for d in deps
                  if level[_stage(d)] > level[_stage(m)])


def test_the_layer_check_finds_an_upward_import():
    graph = {"fds.data.scans": {"fds.export.maps", "fds.render"}, "fds.export.maps": {"fds.data.scans"}}
    assert upward_imports(graph) == ["fds.data.scans (5) → fds.export.maps (10)"]


def test_every_stage_has_one_layer():
    named = [stage for layer in LAYERS for stage in layer]
    assert len(named) == len(set(named)), "a stage is in two layers"
    stages = {_stage(m) for m in import_graph()}
    assert sorted(stages - set(named)) == [], "place the new stage in LAYERS"
    assert sorted(set(named) - stages) == [], "LAYERS names a stage that no longer exists"
    assert set(RUNS) <= set(LAYERS[-2])


def test_imports_go_down_the_layers():
    assert upward_imports(import_graph()) == []


def test_the_runs_stand_beside_each_other():
    graph = import_graph()
    assert sorted(f"{m} → {d}" for m, deps in graph.items() for d in deps
                  if _stage(m) in RUNS and _stage(d) in RUNS and _stage(m) != _stage(d)) == []
