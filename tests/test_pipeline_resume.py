"""End to end: `dvc repro` killed with SIGKILL in the middle of training resumes where it was and
ends with the metrics and curves of an uninterrupted run, in one training process or two."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pipeline_support import TINY, ran
from seqlm.neural.records import TIMINGS as RECORD_TIMINGS

pytestmark = pytest.mark.slow

STATE = Path("data/train_state/state.pt")  # the --state-dir of dvc.yaml's train stage
TIMINGS = {*RECORD_TIMINGS, "minutes"}  # and DVCLive's `minutes`: Evaluation.elapsed / 60
LIVE_TIMINGS = ("tokens_per_second.tsv", "minutes.tsv")
# long enough to be killed after an evaluation and well before the end: a few seconds of training
LONG_TRAIN = {**TINY["train"], "epochs": 4, "eval_every": 10}


def dvc(root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["dvc", *args], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"dvc {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def repro_killed_after_first_state(root: Path, env: dict) -> None:
    """Start `dvc repro` in its own process group; SIGKILL the group once a state is saved."""
    proc = subprocess.Popen(
        ["dvc", "repro"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (root / STATE).exists():
            assert proc.poll() is None, "dvc repro ended before saving a resumable state"
            assert time.monotonic() < deadline, "no resumable state appeared in 120 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def without_timings(record: dict) -> dict:
    return {
        k: without_timings(v) if isinstance(v, dict) else v
        for k, v in record.items()
        if k not in TIMINGS
    }


def curves(root: Path) -> dict[str, str]:
    """DVCLive's metric TSVs (the throughput's and the minutes' left out: they are timings)."""
    folder = root / "dvclive/train/plots/metrics"
    return {
        p.relative_to(folder).as_posix(): p.read_text()
        for p in sorted(folder.rglob("*.tsv"))
        if p.name not in LIVE_TIMINGS
    }


def quiet_state(root: Path) -> None:
    """The state stays as the kill left it: no process is left training (torchrun's workers run
    in sessions of their own and must have died with their launcher)."""
    before = (root / STATE).stat().st_mtime_ns
    time.sleep(3)  # several evaluations' worth of training
    assert (root / STATE).stat().st_mtime_ns == before
    assert not (root / "metrics/train.json").exists()


@pytest.mark.parametrize("processes", [1, 2])
def test_a_repro_killed_mid_training_resumes_and_ends_as_an_uninterrupted_run(
    dvc_project, tmp_path, processes: int
) -> None:
    train = {**LONG_TRAIN, "processes": processes, "device": "cpu"}
    dvc_project.set_params(**{**TINY, "train": train})
    dvc_project.dvc("repro", "ngram")  # the data and the n-gram, shared by both copies
    killed = dvc_project.root
    whole = tmp_path / "whole"
    shutil.copytree(killed, whole, symlinks=True)
    env = dvc_project.env

    dvc(whole, env, "repro")
    repro_killed_after_first_state(killed, env)
    assert (killed / STATE).is_file() and not (killed / "metrics/train.json").exists()
    quiet_state(killed)

    rerun = dvc(killed, env, "repro")
    output = rerun.stdout + rerun.stderr
    assert ran(rerun.stdout) == ["train", "evaluate"]
    assert "resuming from data/train_state/state.pt" in output, output
    assert not (killed / STATE).exists()  # removed once training completed

    for name in ("metrics/train.json", "metrics/eval.json"):
        a, b = (json.loads((root / name).read_text()) for root in (whole, killed))
        assert without_timings(a) == without_timings(b), name
    summary = json.loads((killed / "metrics/train.json").read_text())
    assert summary["steps"] > LONG_TRAIN["eval_every"] and summary["stopped"] == "epochs"
    assert curves(whole) == curves(killed) and "val/perplexity.tsv" in curves(killed)
    model = "data/model/model.pt"
    assert (whole / model).read_bytes() == (killed / model).read_bytes()
