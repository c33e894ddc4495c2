"""No import circles in the package: a module never imports one that (directly or not) imports it.

The graph is read with `ast` from every module of cktflow/ and spice_sim/ plus the top-level
cli.py, function-level imports included (a circle hidden inside a function is still a circle: it
only works because of the order in which things are first called). Only imports of the project's
own modules count; `from . import x` counts as an import of the submodule x when x is one.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cktflow", "spice_sim")


def _modules() -> dict[str, Path]:
    mods = {"cli": ROOT / "cli.py"}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    """The project module `name` refers to (the longest known prefix), or None for a third-party one."""
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        package = mod if is_pkg else mod.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    stem = ".".join(base + ([node.module] if node.module else []))
                else:
                    stem = node.module or ""
                targets = [f"{stem}.{a.name}" if f"{stem}.{a.name}" in mods else stem for a in node.names]
            for t in targets:
                r = _resolve(t, mods)
                if r is not None and r != mod:
                    edges.add(r)
        graph[mod] = edges
    # importing a.b.c runs a/__init__ and a.b/__init__ first: a package's own imports count
    for mod in list(graph):
        for dep in list(graph[mod]):
            parent = dep.rpartition(".")[0]
            while parent:
                if parent in graph and parent != mod and not mod.startswith(parent + "."):
                    graph[mod].add(parent)
                parent = parent.rpartition(".")[0]
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}          # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (found := visit(d)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert "cktflow.model.pipeline" in graph and "cktflow.model.train" in graph["cktflow.model.pipeline"]
    assert "spice_sim" in graph


def test_the_cycle_finder_finds_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_imports_point_down():
    """spice_sim imports nothing of cktflow, and nothing imports the command line."""
    graph = import_graph()
    for mod, deps in graph.items():
        if mod.startswith("spice_sim"):
            assert not [d for d in deps if d.startswith("cktflow")], mod
        assert "cli" not in deps, mod
        if not mod.startswith("cktflow.cli") and mod != "cli":
            assert not [d for d in deps if d.startswith("cktflow.cli")], mod
