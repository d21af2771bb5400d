"""The thread limit of a stage: the param, then the environment, then a share of the cores."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqlm.core.errors import ParamError
from seqlm.core.threads import (
    CoreShare,
    ThreadLimit,
    cores_dir,
    limit_threads,
    machine_cores,
    resolve_threads,
    share_of,
    sharing_enabled,
)


def test_the_param_wins_over_every_environment_limit():
    env = {"SEQLM_THREADS": "3", "OMP_NUM_THREADS": "5"}
    assert resolve_threads(2, env) == ThreadLimit(2, "train.threads")


def test_seqlm_threads_wins_over_omp_num_threads():
    env = {"SEQLM_THREADS": "3", "OMP_NUM_THREADS": "5"}
    assert resolve_threads(0, env) == ThreadLimit(3, "SEQLM_THREADS")
    assert resolve_threads(0, {"OMP_NUM_THREADS": "5"}) == ThreadLimit(5, "OMP_NUM_THREADS")


def test_with_nothing_set_torch_keeps_its_default():
    assert resolve_threads(0, {}) == ThreadLimit(0, "default")
    assert resolve_threads(0, {"SEQLM_THREADS": " ", "OMP_NUM_THREADS": ""}).count == 0


@pytest.mark.parametrize("raw", ["0", "-1", "two", "1.5"])
def test_a_bad_environment_limit_is_refused_with_its_name_and_value(raw):
    with pytest.raises(ParamError, match=rf"SEQLM_THREADS='{raw}'.*whole number >= 1"):
        resolve_threads(0, {"SEQLM_THREADS": raw})


def test_a_negative_request_is_refused():
    with pytest.raises(ParamError, match="-1"):
        resolve_threads(-1, {})


def test_limit_threads_sets_torchs_pool_and_nothing_when_unset(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("SEQLM_THREADS", "1")
        assert limit_threads(0) == ThreadLimit(1, "SEQLM_THREADS")
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        monkeypatch.delenv("SEQLM_THREADS")
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert limit_threads(0).count == 0
        assert torch.get_num_threads() == 2  # left alone
    finally:
        torch.set_num_threads(before)


def test_a_share_is_the_cores_divided_by_the_runs_and_never_below_one():
    assert [share_of(2, n) for n in (0, 1, 2, 3, 4)] == [2, 2, 1, 1, 1]
    assert [share_of(8, n) for n in (1, 2, 3, 4, 16)] == [8, 4, 2, 2, 1]


def dead_pid() -> int:
    """The id of a process that has ended."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_runs_registered_side_by_side_split_the_cores_and_take_them_back(tmp_path: Path):
    applied: list[int] = []
    clock = Clock()
    first = CoreShare(tmp_path, 4, apply=applied.append, clock=clock, every=2.0)
    assert first.threads == 4 and applied == [4]  # alone: all of them
    (tmp_path / str(dead_pid())).touch()  # a run killed without unregistering
    second = CoreShare(tmp_path, 4, pid=os.getppid(), apply=lambda n: None, clock=clock)
    assert second.threads == 2  # the dead run is not counted, and its entry is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [str(os.getpid()), str(os.getppid())]
    )
    assert first.refresh() == 4 and applied == [4]  # looked less than 2 s ago: not again
    clock.now = 2.5
    assert first.refresh() == 2 and applied == [4, 2]  # resized once the other is seen
    second.close()
    clock.now = 5.0
    assert first.refresh() == 4 and applied == [4, 2, 4]  # and back when it is gone
    first.close()
    first.close()  # idempotent
    assert list(tmp_path.iterdir()) == []


def test_a_stage_with_nothing_set_takes_its_share_and_can_opt_out(monkeypatch, tmp_path: Path):
    for name in ("SEQLM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SEQLM_CORES_DIR", str(tmp_path))
    before = torch.get_num_threads()
    try:
        limit = limit_threads(0, share=True)
        assert (limit.count, limit.source) == (machine_cores(), "shared")
        assert torch.get_num_threads() == machine_cores()
        assert [p.name for p in tmp_path.iterdir()] == [str(os.getpid())]
        limit.release()
        assert list(tmp_path.iterdir()) == []
        assert limit_threads(0).count == 0  # the tools that do not share: torch's default
        monkeypatch.setenv("SEQLM_SHARE_CORES", "0")
        assert not sharing_enabled()
        assert limit_threads(0, share=True).count == 0 and list(tmp_path.iterdir()) == []
        monkeypatch.setenv("SEQLM_THREADS", "1")
        monkeypatch.delenv("SEQLM_SHARE_CORES")
        assert limit_threads(0, share=True) == ThreadLimit(1, "SEQLM_THREADS")  # a limit wins
    finally:
        torch.set_num_threads(before)


def test_the_registry_folder_is_the_environments_or_one_per_user_in_the_temporary_folder():
    assert cores_dir({"SEQLM_CORES_DIR": "/x/y"}) == Path("/x/y")
    assert cores_dir({}).name == f"seqlm-cores-{os.getuid()}"
