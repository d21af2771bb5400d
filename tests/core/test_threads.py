"""The thread limit of a stage: the param, then the environment, then torch's default."""

from pathlib import Path

import pytest
import torch

from seqlm.core.errors import ParamError
from seqlm.core.threads import (
    ThreadLimit,
    in_queued_experiment,
    limit_threads,
    resolve_threads,
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


def test_a_queued_experiment_is_one_whose_dvc_root_is_another_project(tmp_path: Path):
    project = tmp_path / "project"
    executor = project / ".dvc/tmp/exps/tmpabc"  # where DVC 3 puts a queued experiment's copy
    (project / ".dvc").mkdir(parents=True)
    (executor / ".dvc").mkdir(parents=True)
    queued = {"DVC_EXP_NAME": "exp-1", "DVC_ROOT": str(project)}
    assert in_queued_experiment(queued, cwd=executor)
    assert not in_queued_experiment(queued, cwd=project)  # dvc exp run in the workspace
    assert not in_queued_experiment({"DVC_ROOT": str(project)}, cwd=executor)  # dvc repro
