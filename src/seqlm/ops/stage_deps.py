"""Each stage's code deps in ``dvc.yaml``: exactly the project modules it imports, no more, no less.

A stage reruns when one of its ``deps`` changes. So a stage must depend on every module that
running ``stages/<name>.py`` imports — transitively, with the ``__init__.py`` of each package on the
way and imports inside functions included (:func:`import_closure`) — or an edit leaves its results
stale; and on nothing else, or an edit to a module it never runs reruns it for nothing (an edit to
``seqlm/neural/dynamic.py``, which only ``evaluate`` runs, must not rerun the 9-minute training).

:func:`code_deps` writes the closure as deps: a folder where every Python file under it is in the
closure, the files one by one elsewhere. ``python -m seqlm.ops.stage_deps --write`` rewrites the code
deps of every stage in ``dvc.yaml`` (the lines under ``deps:`` that start with ``stages/`` or
``src/``; data deps and the rest of the file untouched); ``--check`` (the default) lists the
differences and exits 1 if there are any. ``tests/test_stage_deps.py`` checks it on every test run.

The same holds for params: a stage that reads a params section (``load_section(Cls, "section")``
anywhere in its closure) lists every key of it under ``params:`` (or the whole section), except the
keys whose effect reaches it only through a data dep (:data:`THROUGH_DATA`) and the sections it
reads one key of (:data:`READS_ONLY`). :func:`param_differences` names the keys a stage reads and
does not list: a new key left out of ``dvc.yaml`` would leave its stage's results stale when only
that key changes.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
# Where each top-level project package lives, relative to the repository root.
PACKAGE_DIRS = {"seqlm": Path("src"), "stages": Path(".")}
CODE_PREFIXES = ("stages/", "src/")
DVC_YAML = "dvc.yaml"
# keys a stage need not list: their effect reaches every stage that reads them through a data dep
# (the split fractions and the subword vocabulary through data/tokens; Gutenberg's header lines
# through data/clean, which the tokens come from)
THROUGH_DATA: dict[str, frozenset[str]] = {
    "tokenize": frozenset({"train_fraction", "val_fraction", "test_fraction", "vocab_size"}),
    "clean": frozenset({"strip_gutenberg"}),
}
# (stage, section) -> the only keys of that section the stage uses (evaluate: the device to run on)
READS_ONLY: dict[tuple[str, str], frozenset[str]] = {
    ("evaluate", "train"): frozenset({"device"}),
}
LOAD_SECTION = re.compile(r'load_section\(\s*(\w+),\s*"(\w+)"')


def module_file(
    name: str, root: Path = REPO_ROOT, packages: dict[str, Path] = PACKAGE_DIRS
) -> Path | None:
    """The file (relative to ``root``) that holds module ``name``; None for a module outside the
    project or a name that is not a module (``seqlm.params.load_section``)."""
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
    are resolved against the module's package. Imports anywhere in the file count, functions
    included."""
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


def python_files(folder: Path, root: Path = REPO_ROOT) -> set[Path]:
    """The Python files under ``folder`` (relative to ``root``), recursively."""
    return {p.relative_to(root) for p in (root / folder).rglob("*.py")}


def code_deps(closure: Sequence[Path] | set[Path], root: Path = REPO_ROOT) -> list[str]:
    """The closure as deps: the largest folders whose Python files are all in it, then the files
    left, sorted (``stages/`` first)."""
    files = set(closure)
    chosen: list[Path] = []
    for path in sorted(files):
        if any(folder in path.parents for folder in chosen):
            continue
        # the highest package folder above the file (below the package root) fully in the closure
        for folder in reversed(path.parents):
            if folder == Path(".") or folder in (Path("src"), Path("stages")):
                continue
            if folder.parent in (Path("src"), Path(".")):
                continue  # a top-level package (src/seqlm, stages) is never a dep as a whole
            if python_files(folder, root) <= files:
                chosen.append(folder)
                break
        else:
            chosen.append(path)
    return sorted((p.as_posix() for p in chosen), key=lambda d: (not d.startswith("stages/"), d))


def expected_deps(stage: str, root: Path = REPO_ROOT) -> list[str]:
    """What ``stage``'s code deps must be."""
    return code_deps(set(import_closure(f"stages.{stage}", root)), root)


def pipeline(root: Path = REPO_ROOT) -> dict[str, dict]:
    return yaml.safe_load((root / DVC_YAML).read_text(encoding="utf-8"))["stages"]


def differences(root: Path = REPO_ROOT) -> dict[str, tuple[list[str], list[str]]]:
    """For each stage whose code deps are not its closure: (missing deps, extra deps)."""
    out = {}
    for stage, spec in pipeline(root).items():
        have = [d for d in spec.get("deps", []) if d.startswith(CODE_PREFIXES)]
        want = expected_deps(stage, root)
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        if missing or extra:
            out[stage] = (missing, extra)
    return out


def sections_read(stage: str, root: Path = REPO_ROOT) -> set[str]:
    """The params sections the stage's code reads (``load_section(Cls, "section", ...)``)."""
    found: set[str] = set()
    for path in import_closure(f"stages.{stage}", root):
        found.update(section for _, section in LOAD_SECTION.findall((root / path).read_text()))
    return found


def param_differences(root: Path = REPO_ROOT) -> dict[str, list[str]]:
    """For each stage: the params keys it reads and ``dvc.yaml`` does not list (see the module's
    docstring for the keys that need not be)."""
    from seqlm.params import SECTIONS

    out = {}
    for stage, spec in pipeline(root).items():
        listed = set(spec.get("params", []))
        missing = [
            f"{section}.{key}"
            for section in sorted(sections_read(stage, root) - listed)
            for key in SECTIONS[section].model_fields
            if f"{section}.{key}" not in listed
            and key not in THROUGH_DATA.get(section, ())
            and key in READS_ONLY.get((stage, section), (key,))
        ]
        if missing:
            out[stage] = missing
    return out


def rewrite(text: str, root: Path = REPO_ROOT) -> str:
    """``dvc.yaml``'s text with every stage's code deps replaced by :func:`expected_deps` (at the
    place of the first code dep; data deps, comments and everything else kept)."""
    lines = text.split("\n")
    out: list[str] = []
    stage: str | None = None
    in_deps = written = False
    for line in lines:
        header = re.fullmatch(r"  ([A-Za-z_][\w-]*):\s*", line)
        if header:
            stage, in_deps, written = header.group(1), False, False
        elif re.fullmatch(r"    deps:\s*", line):
            in_deps = True
        elif re.match(r"    \S", line):
            in_deps = False
        item = re.fullmatch(r"(\s+)- (\S+)\s*", line) if in_deps else None
        if item and stage and item.group(2).startswith(CODE_PREFIXES):
            if not written:
                out.extend(f"{item.group(1)}- {dep}" for dep in expected_deps(stage, root))
                written = True
            continue
        out.append(line)
    return "\n".join(out)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``--check`` (default): list the stages whose code deps differ (exit 1); ``--write``: fix."""
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps")
    ap.add_argument("--root", type=Path, default=REPO_ROOT, help="the project (default: this one)")
    args = ap.parse_args(argv)
    path = args.root / DVC_YAML
    if args.write:
        path.write_text(rewrite(path.read_text(encoding="utf-8"), args.root), encoding="utf-8")
    found = differences(args.root)
    for stage, (missing, extra) in found.items():
        print(f"{stage}: missing {missing or 'nothing'}; extra {extra or 'nothing'}")
    if not found:
        print(f"every stage's code deps in {path} are the modules it imports")
    unlisted = param_differences(args.root)
    for stage, keys in unlisted.items():
        print(f"{stage}: reads params dvc.yaml does not list: {', '.join(keys)}")
    return 1 if found or unlisted else 0


if __name__ == "__main__":
    sys.exit(main())
