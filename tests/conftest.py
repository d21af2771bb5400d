"""Shared fixtures: the real corpus through the offline mirror, and small corpora tests write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline_support import TINY_TEXT
from seqlm.data.download import MIRROR_ENV
from seqlm.textbook import TIME_MACHINE_SHA1

os.environ.setdefault("SEQLM_NO_PROGRESS", "1")


@pytest.fixture(scope="session")
def real_corpus() -> Path:
    """The d2l Time Machine from the offline mirror (``SEQLM_MIRROR``; CI points it at ../shared/data)."""
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        pytest.fail(f"{MIRROR_ENV} is not set: point it at a folder holding timemachine.txt")
    path = Path(mirror) / "timemachine.txt"
    if not path.is_file():
        pytest.fail(f"{MIRROR_ENV}={mirror} holds no timemachine.txt")
    from seqlm.data.download import sha1_of

    assert sha1_of(path) == TIME_MACHINE_SHA1, f"{path} is not the d2l copy"
    return path


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the textbook functions' download cache out of the user's home during tests."""
    os.environ["SEQLM_CACHE"] = str(tmp_path_factory.mktemp("seqlm-cache"))


@pytest.fixture
def tiny_text() -> str:
    return TINY_TEXT


# --- a throw-away copy of the project, driven with the real dvc -------------------------------------

REPO_ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILES = (
    "dvc.yaml",
    "params.yaml",
    "gate.yaml",
    "stages",
    "src",
    "models",
    ".dvc/plots",
    ".dvc/config",
)


class DvcProject:
    """A copy of seqlm's pipeline in a fresh git + DVC repository, with small params."""

    def __init__(self, root: Path) -> None:
        import shutil
        import subprocess
        import sys

        self.root = root
        root.mkdir(parents=True)
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "GIT_AUTHOR_NAME": "seqlm tests",
            "GIT_AUTHOR_EMAIL": "tests@seqlm.invalid",
            "GIT_COMMITTER_NAME": "seqlm tests",
            "GIT_COMMITTER_EMAIL": "tests@seqlm.invalid",
            "SEQLM_NO_PROGRESS": "1",
            "DVC_NO_ANALYTICS": "1",
        }
        self.env.pop("SEQLM_MIRROR", None)
        self._subprocess = subprocess
        self.git("init", "-q")
        self.dvc("init", "-q")
        for name in PROJECT_FILES:
            src = REPO_ROOT / name
            if src.is_dir():
                shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, root / name)
        # params.yaml is edited directly here; Hydra would recompose it from conf/ on every
        # `dvc exp run` (tests/test_pipeline_presets.py turns it on with a conf/ of its own)
        self.dvc("config", "hydra.enabled", "false")
        (root / ".gitignore").write_text("/data/\n/dvclive/\n/dvc_plots/\n__pycache__/\n")
        self.git("add", "-A")
        self.git("commit", "-qm", "seqlm pipeline")

    def run(self, *cmd: str, check: bool = True):
        proc = self._subprocess.run(
            cmd, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=900
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}\n"
                f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            )
        return proc

    def git(self, *args: str, check: bool = True):
        return self.run("git", *args, check=check)

    def dvc(self, *args: str, check: bool = True):
        return self.run("dvc", *args, check=check)

    def params(self) -> dict:
        import yaml

        return yaml.safe_load((self.root / "params.yaml").read_text())

    def set_params(self, **sections: dict) -> None:
        """Update params.yaml: ``set_params(tokenize={"token": "word"}, model="gru")``."""
        import yaml

        params = self.params()
        for key, value in sections.items():
            if isinstance(value, dict):
                params.setdefault(key, {}).update(value)
            else:
                params[key] = value
        (self.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def use_corpus(self, text: str) -> None:
        """Serve ``text`` to the download stage through a file:// URL with its real sha1."""
        import hashlib

        raw = text.encode("utf-8")
        corpus = self.root.parent / "corpus-source" / "book.txt"
        corpus.parent.mkdir(exist_ok=True)
        corpus.write_bytes(raw)
        self.set_params(download={"url": corpus.as_uri(), "sha1": hashlib.sha1(raw).hexdigest()})


@pytest.fixture
def new_dvc_project() -> type[DvcProject]:
    """The class, for a test that makes projects of its own (``new_dvc_project(root)``)."""
    return DvcProject


@pytest.fixture
def dvc_project(tmp_path: Path, tiny_text: str) -> DvcProject:
    """A fresh copy of the pipeline reading the tiny corpus (a few dozen lines)."""
    project = DvcProject(tmp_path / "project")
    project.use_corpus(tiny_text * 4)
    project.git("commit", "-qam", "tiny corpus")
    return project


from pipeline_support import STAGES, TINY, ran  # noqa: E402  (shared with the end-to-end tests)


@pytest.fixture
def baseline(dvc_project: DvcProject) -> DvcProject:
    """The whole pipeline with a tiny network, reproduced once and committed, as a user's repo would be."""
    dvc_project.set_params(**TINY)
    first = dvc_project.dvc("repro")
    assert ran(first.stdout) == list(STAGES)
    dvc_project.git("add", "-A")
    dvc_project.git("commit", "-qm", "baseline")
    return dvc_project
