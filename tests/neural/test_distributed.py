"""Data-parallel training: torchrun with two CPU processes (gloo) makes the one-process updates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seqlm.core.errors import ParamError
from seqlm.neural.distributed import World, check_batch_split, join, torchrun_command
from seqlm.neural.models.base import Batch

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
ENTRY = Path(__file__).resolve().parent / "ddp_entry.py"


def run_entry(
    out: Path, model: str, steps: int, processes: int, *extra: str, status: int = 0
) -> tuple[dict, dict]:
    """Run the entry in one process or under torchrun: (its weights, its figures); ``extra``
    arguments (a state folder, a crash step) are passed on, and the run must exit with
    ``status`` (non-zero: nothing is read back)."""
    out.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(TESTS), str(REPO)]),
    }
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    args = [str(ENTRY), str(out), model, str(steps), *extra]
    if processes > 1:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(processes),
            *args,
        ]
    else:
        command = [sys.executable, *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    if status:
        assert done.returncode != 0, done.stderr[-4000:]
        return {}, {}
    assert done.returncode == 0, done.stderr[-4000:]
    weights = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    return weights, json.loads((out / "result.json").read_text())


@pytest.mark.parametrize("model", ["lstm", "seq2seq", "transformer"])
def test_two_torchrun_processes_make_the_updates_of_one_process(tmp_path, model) -> None:
    steps = 5
    one, one_figures = run_entry(tmp_path / "one", model, steps, processes=1)
    two, two_figures = run_entry(tmp_path / "two", model, steps, processes=2)
    assert one.keys() == two.keys()
    for key in one:
        assert torch.allclose(one[key], two[key], rtol=0, atol=1e-5), key
    assert one_figures["stopped"] == two_figures["stopped"] == "callback"
    # the figures are summed over both ranks' targets: the same as one process's
    assert two_figures["train_perplexity"] == pytest.approx(one_figures["train_perplexity"], 1e-5)
    assert two_figures["val_perplexity"] == pytest.approx(one_figures["val_perplexity"], 1e-5)


@pytest.mark.slow
def test_two_processes_killed_after_an_evaluation_resume_as_an_uninterrupted_run(tmp_path) -> None:
    # dropout on: each rank's own generator, and each rank's carried rows, must come back
    steps, crash_at = 8, 5  # evaluations (and states) every 3 steps: resumed from step 3
    whole, whole_figures = run_entry(
        tmp_path / "whole", "lstm", steps, 2, str(tmp_path / "s1"), "0"
    )
    state = tmp_path / "s2"
    run_entry(tmp_path / "killed", "lstm", steps, 2, str(state), str(crash_at), status=3)
    saved = torch.load(state / "state.pt", weights_only=True)
    assert saved["progress"]["steps"] == 3 and saved["fingerprint"]["processes"] == 2
    assert len(saved["ranks"]) == 2 and saved["ranks"][1]["carried"] is not None
    assert not torch.equal(saved["ranks"][0]["rng"]["torch"], saved["ranks"][1]["rng"]["torch"])
    resumed, figures = run_entry(tmp_path / "killed", "lstm", steps, 2, str(state), "0")
    assert figures == whole_figures and figures["steps"] == steps
    assert len(figures["history"]) == 3  # steps 3, 6 and the last
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key
    last = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    again = torch.load(tmp_path / "killed" / "last.pt", weights_only=True)
    for key in last:
        assert torch.equal(last[key], again[key]), key


def test_a_batch_that_does_not_divide_across_the_processes_is_refused() -> None:
    check_batch_split(16, 2)
    with pytest.raises(ParamError, match="multiple of 3"):
        check_batch_split(16, 3)


def test_the_world_comes_from_torchruns_environment(monkeypatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert join(torch.device("cpu"), 16) == World()  # no torchrun: rank 0 of 1, no group
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not join(torch.device("cpu"), 3).distributed
    monkeypatch.setenv("WORLD_SIZE", "2")  # refused before any process group starts
    with pytest.raises(ParamError, match="train.batch_size = 3 rows do not divide across 2"):
        join(torch.device("cpu"), 3)


def test_each_rank_trains_on_its_own_rows_of_the_global_batch() -> None:
    x = np.arange(24).reshape(4, 6)
    flags = np.array([True, False, True, True])
    batches = [Batch((x, x + 1, flags), continues=True)]
    assert list(World().shard(batches)) == batches  # one process: the batches as they are
    [second] = list(World(rank=1, size=2).shard(batches))
    assert second.continues
    np.testing.assert_array_equal(second.arrays[0], x[2:])
    np.testing.assert_array_equal(second.arrays[1], x[2:] + 1)
    np.testing.assert_array_equal(second.arrays[2], flags[2:])


def test_one_process_needs_no_collectives() -> None:
    world = World()
    assert world.is_main and not world.distributed
    assert world.gradient_sync() is None
    assert world.reduce_max(0.25) == 0.25
    assert world.total(1.5, 3) == (1.5, 3)
    assert world.from_main(lambda: "rank 0") == "rank 0"
    hook = lambda step, model: True  # noqa: E731
    assert world.agreed(hook) is hook


def test_the_stage_relaunches_itself_under_torchrun_with_the_same_arguments() -> None:
    command = torchrun_command("stages.train", ["--vocab", "v.tsv"], 4)
    assert command[0] == sys.executable
    assert command[1:3] == ["-m", "torch.distributed.run"]
    assert command[command.index("--nproc-per-node") + 1] == "4"
    assert "--standalone" in command
    assert command[-4:] == ["-m", "stages.train", "--vocab", "v.tsv"]


@pytest.mark.slow
def test_the_train_stage_with_two_processes_writes_its_outputs_once(dvc_project) -> None:
    from pipeline_support import TINY

    dvc_project.env["OMP_NUM_THREADS"] = "1"
    dvc_project.set_params(**TINY)
    dvc_project.set_params(train={**TINY["train"], "processes": 2, "device": "cpu"})
    run = dvc_project.dvc("repro", "train")
    output = run.stdout + run.stderr
    assert "starting 2 training processes with torchrun" in output
    assert output.count("best val perplexity") == 1  # rank 0 alone reports (and writes)
    root = dvc_project.root
    metrics = json.loads((root / "metrics/train.json").read_text())
    assert metrics["epochs"] == TINY["train"]["epochs"]
    assert metrics["best_val_perplexity"] > 1.0
    assert torch.load(root / "data/model/model.pt", weights_only=True)["epoch"] >= 1
    curve = (root / "dvclive/train/plots/metrics/val/perplexity.tsv").read_text().splitlines()
    assert len(curve) == 1 + TINY["train"]["epochs"]  # a header and one row per epoch
