"""The library's imports: no circle between its modules, and every third-party package it imports
declared in pyproject.toml.

The rule for a circle: every import statement of a module counts, wherever it stands — at the top,
inside a function, or under ``if TYPE_CHECKING:``. An import moved into a function or behind
TYPE_CHECKING only postpones the circle to call time or hides it from the interpreter; the two
modules still cannot be read, tested or changed one without the other. A module's edges are the
project modules that :func:`seqlm.ops.stage_deps.imported_names` finds in it (a package's
``__init__`` is not counted for a submodule it holds: importing ``a.b`` runs ``a``, but ``a`` does
not depend on ``a.b`` for that).
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterable
from importlib.metadata import packages_distributions
from pathlib import Path

from seqlm.ops.stage_deps import imported_names, module_file

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def library_modules(src: Path = SRC) -> dict[str, Path]:
    """Every module under ``src/seqlm`` by its dotted name, with its path relative to the root."""
    modules = {}
    for path in sorted((src / "seqlm").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path.relative_to(src.parent)
    return modules


def import_graph(modules: dict[str, Path], root: Path = ROOT) -> dict[str, set[str]]:
    """Each module's imported project modules (``seqlm.x`` that is a module, never itself)."""
    by_file = {path: name for name, path in modules.items()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {module_file(imported, root) for imported in imported_names(path, name, root)}
        graph[name] = {by_file[t] for t in targets if t in by_file and by_file[t] != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted: every
    module in one reaches every other through imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def describe(component: list[str], graph: dict[str, set[str]]) -> str:
    """A circle as its import edges: ``a -> b, b -> a``."""
    members = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]
    return ", ".join(edges)


def test_no_module_of_the_library_imports_itself_through_others():
    graph = import_graph(library_modules())
    found = circles(graph)
    assert not found, "import circles in src/seqlm (every import counts, functions included): " + (
        "; ".join(describe(c, graph) for c in found)
    )


def test_the_circle_finder_finds_a_circle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "src" / "seqlm"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from seqlm.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from seqlm import c\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import seqlm.a\n"
    )
    (pkg / "d.py").write_text("import seqlm.a\n")
    modules = library_modules(tmp_path / "src")
    graph = import_graph(modules, tmp_path)
    assert graph["seqlm.d"] == {"seqlm.a"} and graph["seqlm"] == set()
    assert circles(graph) == [["seqlm.a", "seqlm.b", "seqlm.c"]]


# --- declared dependencies ------------------------------------------------------------------------


def third_party_imports(modules: Iterable[tuple[str, Path]]) -> set[str]:
    """The top-level names of the modules outside the standard library and seqlm imported."""
    names = set()
    for name, path in modules:
        for imported in imported_names(path, name, ROOT):
            top = imported.split(".")[0]
            if top and top != "seqlm" and top not in sys.stdlib_module_names:
                names.add(top)
    return names


def normalized(requirement: str) -> str:
    """``Hydra_Core>=1.3`` → ``hydra-core``."""
    for cut in "<>=!~[; ":
        requirement = requirement.split(cut)[0]
    return requirement.strip().lower().replace("_", "-")


def test_every_package_the_library_imports_is_declared_in_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {normalized(r) for r in project["dependencies"]}
    declared |= {normalized(r) for r in project["optional-dependencies"].get("check", [])}
    distributions = packages_distributions()
    undeclared = {}
    for top in sorted(third_party_imports(library_modules().items())):
        dists = {normalized(d) for d in distributions.get(top, [top])}
        if not dists & declared:
            undeclared[top] = sorted(dists)
    assert not undeclared, f"imported by src/seqlm but not declared in pyproject.toml: {undeclared}"
