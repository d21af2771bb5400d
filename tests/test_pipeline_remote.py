"""End to end: the DVC remote round trip and parallel queued experiments, with the real dvc."""

import copy
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from pipeline_support import ran
from seqlm.ops.report import EVAL, load_entries

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent

REMOTE = "storage"


def test_the_committed_config_names_a_default_remote_beside_the_checkout():
    config = (REPO_ROOT / ".dvc/config").read_text()
    assert re.search(rf"^\s*remote = {REMOTE}\s*$", config, re.M)
    # relative to .dvc/: a folder beside the checkout, so a fresh clone works offline
    assert re.search(rf"\['remote \"{REMOTE}\"'\]\s+url = \.\./\.\./seqlm-storage\s", config)


def test_a_local_override_repoints_the_remote_without_touching_git(dvc_project, tmp_path: Path):
    project = dvc_project  # at tmp_path / "project"
    assert project.dvc("remote", "default").stdout.strip() == REMOTE
    listed = project.dvc("remote", "list").stdout
    assert str(tmp_path / "seqlm-storage") in listed
    project.dvc("remote", "modify", "--local", REMOTE, "url", "s3://bucket/seqlm")
    assert "s3://bucket/seqlm" in project.dvc("remote", "list").stdout
    assert project.git("status", "--porcelain").stdout == ""  # .dvc/config.local is ignored


def clone_of(project, root: Path):
    """A fresh ``git clone`` of ``project`` at ``root``, driven like the project itself."""
    project.git("clone", "-q", str(project.root), str(root))
    clone = copy.copy(project)
    clone.root = root
    return clone


def test_a_fresh_clone_pulls_the_results_and_reproduces_nothing(baseline, tmp_path: Path):
    # as in seqlm's own repository, the DVCLive curves (cache: false) are versioned in git
    gitignore = baseline.root / ".gitignore"
    gitignore.write_text(gitignore.read_text().replace("/dvclive/\n", ""))
    baseline.git("add", "-A")
    baseline.git("commit", "-qm", "version the learning curves")
    pushed = baseline.dvc("push", "--run-cache").stdout
    assert re.search(r"\d+ files? pushed", pushed), pushed
    storage = tmp_path / "seqlm-storage"
    assert (storage / "files/md5").is_dir() and (storage / "runs").is_dir()

    clone = clone_of(baseline, tmp_path / "clone")
    assert not (clone.root / "data").exists()
    pulled = clone.dvc("pull", "--run-cache")
    assert "added" in pulled.stdout, pulled.stdout
    assert (clone.root / ".dvc/cache/runs").is_dir()
    model = "data/model/model.pt"
    assert (clone.root / model).read_bytes() == (baseline.root / model).read_bytes()

    status = clone.dvc("status").stdout
    assert "Data and pipelines are up to date" in status, status
    repro = clone.dvc("repro")
    assert ran(repro.stdout + repro.stderr) == []
    assert "Running stage" not in repro.stdout and "up to date" in repro.stdout, repro.stdout
    assert clone.git("status", "--porcelain").stdout == ""  # nothing rewritten


def start_workers(project, jobs: int, **env: str) -> None:
    """``dvc queue start -j jobs`` with ``env`` added. Its output goes to a file: the workers it
    spawns hold on to its stdout, so a pipe would stay open until they exit."""
    log = project.root.parent / "queue-start.log"
    with log.open("w") as out:
        subprocess.run(
            ["dvc", "queue", "start", "-j", str(jobs)],
            cwd=project.root,
            env={**project.env, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=True,
        )
    assert f"Started '{jobs}' new experiments task queue workers" in log.read_text(), (
        log.read_text()
    )


def wait_for_queue(project, experiments: int, seconds: float = 300) -> str:
    """``dvc queue status`` once ``experiments`` have ended, succeeded or failed (or the time is
    up). Counting ended ones, not the absence of Queued and Running, leaves no gap to fall into
    while a worker takes a task."""
    deadline = time.monotonic() + seconds
    status = ""
    while time.monotonic() < deadline:
        status = project.dvc("queue", "status").stdout
        if len(re.findall(r"\b(?:Success|Failed)\b", status)) >= experiments:
            break
        time.sleep(4)  # each status call starts dvc: poll gently beside the two workers
    return status


STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ seqlm\.", re.M)


def logged_interval(log: str) -> tuple[datetime, datetime]:
    """The first and last timestamp of seqlm's log lines in an experiment's output."""
    stamps = [datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in STAMP.findall(log)]
    assert stamps, log
    return min(stamps), max(stamps)


def test_two_queued_experiments_run_at_once_each_on_its_share_of_the_cores(baseline):
    for seed in (1, 2):
        baseline.dvc("exp", "run", "--queue", "-n", f"seed{seed}", "-S", f"train.seed={seed}")
    start_workers(baseline, 2, SEQLM_THREADS="1")  # the workers inherit this environment
    status = wait_for_queue(baseline, 2)
    baseline.dvc("queue", "stop", check=False)
    assert len(re.findall(r"\bSuccess\b", status)) == 2, status

    entries = {e.name: e for e in load_entries(baseline.root)}
    assert {entries[n].params["train.seed"] for n in ("seed1", "seed2")} == {1, 2}
    perplexities = [entries[n].metric(EVAL, "val.perplexity") for n in ("seed1", "seed2")]
    assert all(p > 1.0 for p in perplexities) and perplexities[0] != perplexities[1]

    logs = {n: baseline.dvc("queue", "logs", n).stdout for n in ("seed1", "seed2")}
    for log in logs.values():
        assert ran(log) == ["train", "evaluate"], log
        # both stages that use torch took the limit from the environment
        assert log.count("CPU threads: 1 (SEQLM_THREADS)") == 2, log
    (start1, end1), (start2, end2) = (logged_interval(log) for log in logs.values())
    assert start1 < end2 and start2 < end1, logs  # the two ran at the same time
