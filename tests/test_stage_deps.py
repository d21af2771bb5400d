"""Every stage depends on every project module it imports, so that no edit leaves a result stale.

A stage reruns only when one of its ``deps`` in ``dvc.yaml`` changes. The import closure of
``stages/<name>.py`` — every ``seqlm`` and ``stages`` module it imports, transitively, with the
``__init__.py`` of each package on the way and imports inside functions included — must therefore be
covered by the stage's deps (a folder covers every module under it).
"""

from __future__ import annotations

import ast
import json
from collections import deque
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
# Where each top-level project package lives, relative to the repository root.
PACKAGE_DIRS = {"seqlm": Path("src"), "stages": Path(".")}


def module_file(
    name: str, root: Path = REPO_ROOT, packages: dict[str, Path] = PACKAGE_DIRS
) -> Path | None:
    """The file (relative to ``root``) that holds module ``name``; None for a module outside the project
    or a name that is not a module (``seqlm.params.load_section``)."""
    parts = name.split(".")
    if parts[0] not in packages:
        return None
    base = packages[parts[0]].joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if (root / candidate).is_file():
            return candidate
    return None


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imported_names(path: Path, module: str, root: Path = REPO_ROOT) -> set[str]:
    """Every absolute module name ``module`` (stored at ``path``) may import: ``import a.b`` gives
    ``a.b``; ``from a import b`` gives ``a`` and ``a.b`` (``b`` may be a submodule); relative imports
    are resolved against the module's package. Imports anywhere in the file count, functions included."""
    package = module if is_package(path) else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse((root / path).read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def with_parents(name: str) -> list[str]:
    """``a.b.c`` → ``["a", "a.b", "a.b.c"]``: importing a module runs every package above it."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def import_closure(
    module: str, root: Path = REPO_ROOT, packages: dict[str, Path] = PACKAGE_DIRS
) -> dict[Path, str]:
    """Every project file that running ``module`` imports, transitively, each mapped to the module
    that first imported it (the start module maps to itself)."""
    found: dict[Path, str] = {}
    queue: deque[tuple[str, str]] = deque((name, module) for name in with_parents(module))
    while queue:
        name, importer = queue.popleft()
        path = module_file(name, root, packages)
        if path is None or path in found:
            continue
        found[path] = importer
        for imported in imported_names(path, name, root):
            queue.extend((parent, name) for parent in with_parents(imported))
    return found


def covers(dep: str, path: Path) -> bool:
    """A dep covers a file when it is that file or a folder above it."""
    dep_path = Path(dep)
    return path == dep_path or dep_path in path.parents


def pipeline_stages() -> dict[str, dict]:
    return yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]


STAGE_NAMES = list(pipeline_stages())


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_every_stage_depends_on_every_module_it_imports(stage):
    deps = pipeline_stages()[stage].get("deps", [])
    closure = import_closure(f"stages.{stage}")
    assert Path("stages", f"{stage}.py") in closure, f"the closure of {stage} misses its own script"
    missing = [
        f"{path} (imported by {importer})"
        for path, importer in sorted(closure.items())
        if not any(covers(dep, path) for dep in deps)
    ]
    assert not missing, (
        f"stage '{stage}' imports modules its deps in dvc.yaml do not cover: {missing}"
    )


def test_every_code_dep_of_every_stage_exists():
    for stage, spec in pipeline_stages().items():
        for dep in spec.get("deps", []):
            if dep.startswith(("src/", "stages/")):
                assert (REPO_ROOT / dep).exists(), (
                    f"stage '{stage}' depends on {dep}, which does not exist"
                )


def test_the_train_closure_reaches_batching_through_the_training_loop():
    closure = import_closure("stages.train")
    assert Path("src/seqlm/neural/batching.py") in closure
    assert Path("src/seqlm/neural/__init__.py") in closure
    assert Path("stages/__init__.py") in closure
    assert not any(path.is_relative_to("src/seqlm/ops") for path in closure)


@pytest.fixture
def toy_project(tmp_path: Path) -> Path:
    """A two-package project: ``stages/run.py`` imports ``lib.a`` at the top and ``lib.c`` inside a
    function; ``lib.a`` imports ``lib.sub.b`` relatively; ``lib.unused`` is imported by nobody."""
    files = {
        "stages/__init__.py": "",
        "stages/run.py": "import os\nfrom lib import a\n\ndef main():\n    from lib.c import f\n",
        "src/lib/__init__.py": "",
        "src/lib/a.py": "from .sub.b import thing\n",
        "src/lib/sub/__init__.py": "from .. import d\n",
        "src/lib/sub/b.py": "thing = 1\n",
        "src/lib/c.py": "def f():\n    pass\n",
        "src/lib/d.py": "",
        "src/lib/unused.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_closure_follows_relative_imports_function_imports_and_package_inits(toy_project):
    packages = {"lib": Path("src"), "stages": Path(".")}
    closure = import_closure("stages.run", toy_project, packages)
    assert set(closure) == {
        Path(p)
        for p in (
            "stages/__init__.py",
            "stages/run.py",
            "src/lib/__init__.py",
            "src/lib/a.py",
            "src/lib/sub/__init__.py",
            "src/lib/sub/b.py",
            "src/lib/c.py",
            "src/lib/d.py",
        )
    }
    assert closure[Path("src/lib/c.py")] == "stages.run"
    assert closure[Path("src/lib/d.py")] == "lib.sub"


def test_a_folder_dep_covers_the_modules_under_it_and_nothing_beside_it():
    assert covers("src/seqlm/neural", Path("src/seqlm/neural/models/cells.py"))
    assert covers("src/seqlm/params", Path("src/seqlm/params/data.py"))
    assert not covers("src/seqlm/neural", Path("src/seqlm/neural_eval.py"))
    assert not covers("src/seqlm/data", Path("src/seqlm/perplexity.py"))


# --- end to end: dvc status after an edit ------------------------------------------------------------


def stale_stages(project) -> set[str]:
    """The stages ``dvc status`` reports as changed."""
    status = json.loads(project.dvc("status", "--json").stdout or "{}")
    return {name.rpartition(":")[2] for name in status}


@pytest.mark.slow
def test_an_edit_reruns_exactly_the_stages_that_import_the_edited_module(baseline):
    assert stale_stages(baseline) == set()
    edits = {
        "src/seqlm/neural/batching.py": {"train", "evaluate"},
        "src/seqlm/ops/gate.py": set(),  # used by no stage
    }
    for module, expected in edits.items():
        path = baseline.root / module
        original = path.read_text()
        path.write_text(original + "# an edit\n")
        assert stale_stages(baseline) == expected, f"after editing {module}"
        path.write_text(original)
    assert stale_stages(baseline) == set()
