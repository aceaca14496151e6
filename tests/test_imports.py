"""No import circles in `kzoo/`: every import of a kzoo module, at the top of a file or
deferred inside a function, is an edge of one graph, and that graph has no cycle.

A circle that "works" because one side imports inside a function still ties the two
modules together (neither can be read, tested or moved alone), so deferred imports
count too. The graph is read with `ast`, without importing anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kzoo

ROOT = Path(kzoo.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str, path: Path, known) -> set[str]:
    """The kzoo modules `name` imports anywhere in its file (`from kzoo.x import y` counts
    as `kzoo.x.y` when that is a module, else as `kzoo.x`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import kzoo.a.b` names module kzoo.a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(set(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, c) for c in components]


def _cycle_in(graph, component):
    """A shortest path from the component's first module back to itself, through it."""
    start = min(component)
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for w in sorted(graph[path[-1]] & component):
            if w == start:
                return path + [start]
            if w not in seen:
                seen.add(w)
                paths.append(path + [w])
    raise AssertionError("unreachable: a strongly connected component has a cycle")


def test_the_graph_is_read():
    graph = import_graph()
    # a top-level import, a relative one and one deferred inside a function are all edges
    assert "kzoo.errors" in graph["kzoo.cli"]
    assert "kzoo.zoo" in graph["kzoo.recipes.registry"]  # deferred (inside _load_all)
    assert len(graph) > 50


def test_find_cycles_names_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]


def test_no_import_circles():
    cycles = find_cycles(import_graph())
    assert not cycles, "import circles in kzoo/:\n" + "\n".join(" -> ".join(c) for c in cycles)
