"""Every stage depends on exactly the project modules it imports, so that no edit leaves a result
stale and none reruns a stage for nothing.

A stage reruns only when one of its ``deps`` in ``dvc.yaml`` changes. The import closure of
``stages/<name>.py`` — every ``seqlm`` and ``stages`` module it imports, transitively, with the
``__init__.py`` of each package on the way and imports inside functions included — must therefore be
covered by the stage's deps (a folder covers every module under it), and its code deps must cover
nothing else (:mod:`seqlm.ops.stage_deps`, which also writes them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqlm.ops.stage_deps import (
    REPO_ROOT,
    code_deps,
    differences,
    import_closure,
    param_differences,
    pipeline,
    rewrite,
    sections_read,
)


def covers(dep: str, path: Path) -> bool:
    """A dep covers a file when it is that file or a folder above it."""
    dep_path = Path(dep)
    return path == dep_path or dep_path in path.parents


def pipeline_stages() -> dict[str, dict]:
    return pipeline(REPO_ROOT)


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


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_no_stage_depends_on_a_module_it_does_not_import(stage):
    deps = [
        d for d in pipeline_stages()[stage].get("deps", []) if d.startswith(("src/", "stages/"))
    ]
    closure = import_closure(f"stages.{stage}")
    extra = [
        dep
        for dep in deps
        if not any(covers(dep, path) for path in closure)
        or (REPO_ROOT / dep).is_dir()
        and any(p.relative_to(REPO_ROOT) not in closure for p in (REPO_ROOT / dep).rglob("*.py"))
    ]
    assert not extra, (
        f"stage '{stage}' depends on code it does not import (an edit there would rerun it for "
        f"nothing): {extra}; python -m seqlm.ops.stage_deps --write fixes dvc.yaml"
    )


def test_the_checker_reports_a_missing_and_an_extra_dep_and_the_writer_fixes_both(tmp_path):
    text = (REPO_ROOT / "dvc.yaml").read_text()
    broken = text.replace("      - src/seqlm/neural/dynamic.py\n", "", 1).replace(
        "      - stages/train.py\n",
        "      - stages/train.py\n      - src/seqlm/neural/generate.py\n",
        1,
    )
    assert broken != text
    for name in ("stages", "src"):
        (tmp_path / name).symlink_to(REPO_ROOT / name)
    (tmp_path / "dvc.yaml").write_text(broken)
    found = differences(tmp_path)
    assert found["evaluate"] == (["src/seqlm/neural/dynamic.py"], [])
    assert found["train"] == ([], ["src/seqlm/neural/generate.py"])
    assert rewrite(broken, tmp_path) == text


def test_a_folder_is_a_dep_only_when_every_module_under_it_is_imported():
    folder = REPO_ROOT / "src" / "seqlm" / "neural" / "models"
    models = sorted(p.relative_to(REPO_ROOT) for p in folder.glob("*.py"))
    assert code_deps(set(models)) == ["src/seqlm/neural/models"]
    assert code_deps(set(models[:-1])) == [p.as_posix() for p in models[:-1]]


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
        "src/seqlm/neural/dynamic.py": {"evaluate"},  # only the evaluate stage runs it
        "src/seqlm/data/download.py": {"download", "clean", "tokenize"},  # they read corpus files
        "src/seqlm/ops/gate.py": set(),  # used by no stage
    }
    for module, expected in edits.items():
        path = baseline.root / module
        original = path.read_text()
        path.write_text(original + "# an edit\n")
        assert stale_stages(baseline) == expected, f"after editing {module}"
        path.write_text(original)
    assert stale_stages(baseline) == set()


# --- params: every key a stage reads is listed --------------------------------------------------------


def test_every_stage_lists_every_params_key_it_reads():
    assert param_differences() == {}, (
        "stages read params keys dvc.yaml does not list under their params: (a change to one "
        "alone would leave the stage's results stale)"
    )


def test_the_params_check_names_a_key_left_out_and_spares_keys_that_reach_a_stage_through_data(
    tmp_path,
):
    text = (REPO_ROOT / "dvc.yaml").read_text()
    broken = text.replace("      - train.beta2\n", "", 1)
    assert broken != text
    for name in ("stages", "src"):
        (tmp_path / name).symlink_to(REPO_ROOT / name)
    (tmp_path / "dvc.yaml").write_text(broken)
    assert param_differences(tmp_path) == {"train": ["train.beta2"]}
    assert "train" in sections_read("evaluate") and "tokenize" in sections_read("ngram")
    listed = pipeline_stages()["evaluate"]["params"]
    assert "train.device" in listed and "train.lr" not in listed  # it reads the device alone
    assert "tokenize.train_fraction" not in pipeline_stages()["ngram"]["params"]
    assert "data/tokens" in pipeline_stages()["ngram"]["deps"]  # the fractions come through it
