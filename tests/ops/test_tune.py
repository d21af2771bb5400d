"""``seqlm tune``: the search file checked before any trial, the trial channel, the study's pieces,
and end to end with the real dvc and Optuna on a tiny corpus (two trials at once, one pruned; two
worker processes sharing one study; a rerun that continues it; blind to the test split)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml

from seqlm.core.errors import ParamError
from seqlm.neural.records import Evaluation
from seqlm.neural.trainer import evaluation_hooks
from seqlm.neural.trial import (
    GO,
    PRUNE,
    TRIAL_DIR_ENV,
    TUNER_PID_ENV,
    TrialChannel,
    read_reports,
    verdict_path,
)
from seqlm.ops import tune as tune_cli
from seqlm.tune.recipe import nested, recipe_text
from seqlm.tune.space import Range, check_space, check_value, parse_space, read_space
from seqlm.tune.study import fail_interrupted, make_sampler
from seqlm.tune.trials import HOST_ATTR, PID_ATTR, Tuning, hydra_value, judge, trial_command

REPO_ROOT = Path(__file__).resolve().parents[2]


def composed_params() -> dict:
    return tune_cli.composed("timemachine", {}, REPO_ROOT / "conf")


# --- the search file -----------------------------------------------------------------------------------


def test_the_shipped_search_files_pass_their_checks():
    params = composed_params()
    files = sorted((REPO_ROOT / "conf" / "search").glob("*.yaml"))
    assert files
    for path in files:
        search = read_space(path)
        check_space(search, {**params}, str(path))


def test_a_search_file_parses_ranges_choices_fixed_and_the_pruner():
    search = parse_space(
        {
            "sampler": "random",
            "seed": 3,
            "pruner": {"name": "threshold", "upper": 20.0, "warmup": 2},
            "fixed": {"train.budget_minutes": 1},
            "space": {
                "train.lr": {"low": 0.001, "high": 0.01, "log": True},
                "net.hidden_size": {"low": 64, "high": 256, "step": 64},
                "model": ["lstm", "gru"],
            },
        },
        "s.yaml",
    )
    assert search.space["train.lr"] == Range(0.001, 0.01, log=True)
    assert search.space["net.hidden_size"].integer and not search.space["train.lr"].integer
    assert search.pruner.name == "threshold" and search.pruner.upper == 20.0
    assert search.size() is None  # a float range
    drawn = search.suggest(
        optuna.trial.FixedTrial({"train.lr": 0.002, "net.hidden_size": 128, "model": "gru"})
    )
    assert drawn == {"train.lr": 0.002, "net.hidden_size": 128, "model": "gru"}


def tpe_draws(startup: int | None, trials: int = 5) -> list[float]:
    data = {"space": {"train.lr": {"low": 0.001, "high": 0.1, "log": True}}, "seed": 7}
    if startup is not None:
        data["startup"] = startup
    search = parse_space(data, "s.yaml")
    study = optuna.create_study(sampler=make_sampler(search))
    draws = []
    for _ in range(trials):
        trial = study.ask()
        lr = search.suggest(trial)["train.lr"]
        study.tell(trial, (math.log(lr) - math.log(0.01)) ** 2)
        draws.append(lr)
    return draws


def test_startup_sets_when_the_tpe_sampler_stops_drawing_at_random():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    default, late, early = tpe_draws(None), tpe_draws(20), tpe_draws(2)
    assert default == late  # Optuna's ten random draws either way
    assert early[:2] == default[:2] and early[2:] != default[2:]  # TPE from the third


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"space": {"train.lr": [0.1]}, "samplr": "tpe"}, "unknown key(s) samplr"),
        ({"space": {}}, "'space' must map at least one"),
        ({"space": {"train.lr": {"low": 0.1, "high": 0.01}}}, "low 0.1 must be below high 0.01"),
        ({"space": {"train.lr": {"low": 0, "high": 1, "log": True}}}, "a log range needs low > 0"),
        ({"space": {"train.lr": {"low": 0.1}}}, "a range has keys low and high"),
        ({"space": {"train.lr": []}}, "empty list of choices"),
        ({"space": {"train.lr": 0.1}}, "give a list of choices or a range"),
        ({"space": {"train.lr": [0.1]}, "sampler": "bayes"}, "sampler 'bayes' is not one of"),
        ({"space": {"train.lr": [0.1]}, "pruner": "hyper"}, "pruner 'hyper' is not one of"),
        ({"space": {"train.lr": [0.1]}, "pruner": "threshold"}, "needs upper"),
        (
            {"space": {"train.lr": {"low": 0.1, "high": 1.0}}, "sampler": "grid"},
            "needs a list of choices for every key; train.lr is a range",
        ),
        (
            {"space": {"train.lr": [0.1]}, "fixed": {"train.lr": 0.2}},
            "train.lr both fixed and searched",
        ),
        ({"space": {"train.lr": [0.1]}, "startup": 0}, "startup must be an integer >= 1, got 0"),
        (
            {"space": {"train.lr": [0.1]}, "sampler": "random", "startup": 3},
            "startup is the tpe sampler's; sampler 'random' has none",
        ),
    ],
)
def test_a_malformed_search_file_is_refused_with_what_is_wrong(data, message):
    with pytest.raises(ParamError) as e:
        parse_space(data, "s.yaml")
    assert message in str(e.value) and "s.yaml" in str(e.value)


def test_a_study_starts_from_the_params_as_they_are_when_the_space_holds_them():
    search = parse_space(
        {
            "space": {
                "net.hidden_size": {"low": 256, "high": 1024, "step": 128},
                "train.lr": {"low": 0.001, "high": 0.01, "log": True},
                "model": ["lstm", "gru"],
            }
        },
        "s.yaml",
    )
    values = {"net.hidden_size": 512, "train.lr": 0.006, "model": "lstm", "net.dropout": 0.1}
    assert search.starting_point(values) == {
        "net.hidden_size": 512,
        "train.lr": 0.006,
        "model": "lstm",
    }
    for key, outside in (("net.hidden_size", 500), ("train.lr", 0.02), ("model", "rnn")):
        assert search.starting_point({**values, key: outside}) == {}
    assert search.starting_point({**values, "net.hidden_size": "auto"}) == {}


def test_an_unknown_key_or_a_refused_value_is_named_with_what_is_allowed():
    params = composed_params()
    with pytest.raises(ParamError, match=r"unknown params key 'net.hiden_size'.*hidden_size"):
        check_value(params, "net.hiden_size", 128, "s.yaml")
    with pytest.raises(ParamError, match=r"unknown params key 'nett.dropout'.*section among"):
        check_value(params, "nett.dropout", 0.1, "s.yaml")
    with pytest.raises(ParamError, match=r"net.dropout = 1.5 is refused"):
        check_value(params, "net.dropout", 1.5, "s.yaml")
    with pytest.raises(ParamError, match=r"model = 'lstmm'"):
        check_value(params, "model", "lstmm", "s.yaml")
    # both ends of a range are checked, every choice too
    search = parse_space({"space": {"train.lr": {"low": -1.0, "high": 0.1}}}, "s.yaml")
    with pytest.raises(ParamError, match=r"train.lr = -1.0 is refused"):
        check_space(search, params, "s.yaml")
    search = parse_space({"space": {"train.optimizer": ["adamw", "lion"]}}, "s.yaml")
    with pytest.raises(ParamError, match=r"train.optimizer = 'lion' is refused"):
        check_space(search, params, "s.yaml")


def test_hydra_values_are_written_as_dvc_exp_run_s_reads_them():
    assert hydra_value(0.001) == "0.001" and hydra_value(1e-05) == "1e-05"
    assert hydra_value(True) == "true" and hydra_value(None) == "null"
    assert hydra_value("lstm") == "lstm" and hydra_value("a b") == '"a b"'
    assert hydra_value([2000, 6000]) == "[2000,6000]"
    command = trial_command("s-3", "ptb", {"train.lr": 0.002, "model": "gru"})
    assert command == [
        sys.executable, "-m", "dvc", "exp", "run", "--temp", "-n", "s-3",
        "-S", "dataset=ptb", "-S", "train.lr=0.002", "-S", "model=gru",
        "train",
    ]  # fmt: skip


# --- the CLI's checks before any trial -----------------------------------------------------------------


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    """A folder with the repository's conf/ and params.yaml (what the checks read)."""
    shutil.copytree(REPO_ROOT / "conf", tmp_path / "conf")
    shutil.copy(REPO_ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def run_cli(root: Path, *argv: str, capsys) -> tuple[int, str]:
    cwd = os.getcwd()
    os.chdir(root)
    try:
        code = tune_cli.main(list(argv), prog="seqlm tune")
    finally:
        os.chdir(cwd)
    return code, capsys.readouterr().err


def test_a_budget_too_small_for_one_trial_is_refused_before_any_trial(project_root, capsys):
    code, err = run_cli(project_root, "lstm", "--minutes", "1", capsys=capsys)
    assert code == 1
    assert "--minutes 1 cannot hold one trial" in err and "train.budget_minutes = 4" in err
    assert not (project_root / "tune").exists()  # no study, no trial


def test_a_searched_training_budget_is_held_to_its_longest_choice(project_root, capsys):
    (project_root / "conf" / "search" / "budget.yaml").write_text(
        "space:\n  train.budget_minutes: [2.0, 6.0]\n"
    )
    code, err = run_cli(project_root, "budget", "--minutes", "5", capsys=capsys)
    assert code == 1 and "--minutes 5 cannot hold one trial" in err
    assert "train.budget_minutes = 6 minutes" in err


@pytest.mark.parametrize(
    "every, minutes, trial_minutes, warning",
    [
        (500, 0.0, 4.0, "compares them at equal steps"),
        (0, 0.0, 4.0, "validate at every epoch's end: the pruner compares them at equal epochs"),
        (0, 2.0, 4.0, "at most 2 evaluations: too few to prune it early"),
        (0, 1.0, 4.0, None),
        (500, 0.0, 0.0, None),  # no budget: steps are what the trials share
    ],
)
def test_the_tuner_warns_when_the_trials_evaluations_cannot_serve_the_pruner(
    every, minutes, trial_minutes, warning, caplog
):
    with caplog.at_level("WARNING", logger=tune_cli.log.name):
        tune_cli.check_cadence({"eval_every": every, "eval_minutes": minutes}, trial_minutes)
    if warning is None:
        assert not caplog.records
    else:
        assert len(caplog.records) == 1 and warning in caplog.records[0].getMessage()


def test_the_shipped_searches_compare_trials_at_equal_minutes():
    files = sorted((Path(__file__).parents[2] / "conf" / "search").glob("*.yaml"))
    assert {path.stem for path in files} >= {"lstm", "lstm_8min", "lstm_ptb", "transformer"}
    for path in files:
        search = read_space(path)
        fixed = search.fixed
        assert fixed["train.eval_minutes"] > 0 and "train.eval_every" not in fixed
        assert fixed["train.eval_minutes"] * 4 <= fixed["train.budget_minutes"]


def test_an_unknown_key_in_the_search_file_is_refused_before_any_trial(project_root, capsys):
    (project_root / "conf" / "search" / "bad.yaml").write_text(
        "space:\n  net.hidden_sise: [128, 256]\n"
    )
    code, err = run_cli(project_root, "bad", "--minutes", "5", capsys=capsys)
    assert code == 1 and "unknown params key 'net.hidden_sise'" in err
    code, err = run_cli(project_root, "nope", capsys=capsys)
    assert code == 1 and "no search file" in err and "lstm" in err  # the files there are listed
    code, err = run_cli(project_root, "lstm", "--set", "train.lr=-1", capsys=capsys)
    assert code == 1 and "train.lr = -1 must be a number > 0" in err
    assert not (project_root / "tune").exists()


# --- the channel between a training and the tuner ------------------------------------------------------


def evaluation(val: float, step: int) -> Evaluation:
    return Evaluation(1, 9.0, val, 3.0, 0.01, 100.0, 1.0, 1.2, True, step, 60.0)


def test_a_training_reports_each_evaluation_and_stops_at_a_prune_verdict(tmp_path):
    channel = TrialChannel(tmp_path, wait_s=10)

    def tuner():
        for index, verdict in enumerate((GO, PRUNE)):
            while not read_reports(tmp_path, index):
                time.sleep(0.01)
            verdict_path(tmp_path, index).write_text(verdict)

    thread = threading.Thread(target=tuner)
    thread.start()
    assert channel.report(evaluation(12.0, 10)) is False
    assert channel.report(evaluation(11.0, 20)) is True
    thread.join()
    assert channel.pruned and channel.reported == 2
    reports = read_reports(tmp_path)
    assert [r["val_perplexity"] for r in reports] == [12.0, 11.0]
    assert reports[1] == {"evaluation": 1, "step": 20, "minutes": 1.0, "val_perplexity": 11.0}


def test_without_a_verdict_in_time_training_goes_on(tmp_path):
    channel = TrialChannel(tmp_path, wait_s=0.2)
    assert channel.report(evaluation(12.0, 10)) is False and not channel.pruned


def test_a_training_whose_tuner_is_gone_ends_at_its_next_evaluation(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    channel = TrialChannel(tmp_path, tuner_pid=dead.pid, wait_s=60)
    started = time.monotonic()
    assert channel.report(evaluation(12.0, 10)) is True
    assert time.monotonic() - started < 10  # not the whole wait
    alive = TrialChannel(tmp_path / "b", tuner_pid=os.getpid(), wait_s=0.3)
    (tmp_path / "b").mkdir()
    assert alive.report(evaluation(12.0, 10)) is False


def test_the_channel_is_there_only_for_a_tuners_trial(monkeypatch, tmp_path):
    monkeypatch.delenv(TRIAL_DIR_ENV, raising=False)
    assert TrialChannel.from_env() is None
    monkeypatch.setenv(TRIAL_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(TUNER_PID_ENV, "123")
    assert TrialChannel.from_env() == TrialChannel(tmp_path, tuner_pid=123)


def test_evaluation_hooks_call_every_hook_and_stop_when_one_asks():
    calls = []
    hook = evaluation_hooks(
        lambda r: calls.append("live"), None, lambda r: calls.append("trial") or True
    )
    assert hook(evaluation(1.0, 1)) is True and calls == ["live", "trial"]
    assert evaluation_hooks(None, None) is None


def test_judge_reports_to_the_pruner_and_writes_its_verdicts(tmp_path):
    class FakeTrial:
        def __init__(self):
            self.reported = []

        def report(self, value, step):
            self.reported.append((step, value))

        def should_prune(self):
            return self.reported[-1][1] > 15

    for index, value in enumerate((14.0, 16.0, 13.0)):
        (tmp_path / f"report-{index}.json").write_text(
            json.dumps({"evaluation": index, "val_perplexity": value})
        )
    trial = FakeTrial()
    assert judge(trial, tmp_path, 0) == (2, True)  # stops at the condemned evaluation
    assert trial.reported == [(0, 14.0), (1, 16.0)]
    assert verdict_path(tmp_path, 0).read_text() == GO
    assert verdict_path(tmp_path, 1).read_text() == PRUNE
    assert not verdict_path(tmp_path, 2).exists()


def test_a_pruned_training_ends_the_train_stage_with_nothing_written(
    tmp_path, monkeypatch, tiny_text
):
    from stages import train as train_stage
    from tiny_pipeline import write_tiny_pipeline

    paths = write_tiny_pipeline(tmp_path, tiny_text * 3, train={"epochs": 3, "lr": 0.01})
    channel = tmp_path / "trial"
    channel.mkdir()
    for index in range(3):
        verdict_path(channel, index).write_text(GO if index == 0 else PRUNE)
    monkeypatch.setenv(TRIAL_DIR_ENV, str(channel))
    checkpoint, metrics = tmp_path / "model" / "model.pt", tmp_path / "train.json"
    argv = [
        "--params", str(paths["params"]), "--vocab", str(paths["vocab"]),
        "--corpus-dir", str(paths["corpus"]), "--tokens-dir", str(paths["tokens"]),
        "--checkpoint", str(checkpoint), "--metrics", str(metrics),
        "--live-dir", str(tmp_path / "live"), "--state-dir", str(tmp_path / "state"),
    ]  # fmt: skip
    assert train_stage.main(argv) == 1
    assert len(read_reports(channel)) == 2  # pruned at its second evaluation, not after it
    assert not checkpoint.exists() and not metrics.exists()
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())


# --- the study -----------------------------------------------------------------------------------------


def tuning_for(root: Path, search_data: dict, **kw) -> Tuning:
    search = parse_space(search_data, "s.yaml")
    defaults = dict(
        root=root,
        search_name="s",
        search=search,
        dataset="tiny",
        study_name="s-tiny",
        storage="sqlite:///tune/studies.db",
        minutes=5.0,
        trial_minutes=0.0,
    )
    return Tuning(**{**defaults, **kw})


def test_a_trial_left_running_by_a_dead_tuner_is_failed_and_drawn_again(tmp_path):
    import socket

    from seqlm.tune.study import open_study

    tuning = tuning_for(tmp_path, {"space": {"train.lr": [0.01, 0.02]}})
    study = open_study(tuning)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = study.ask()
    orphan.suggest_categorical("train.lr", [0.01, 0.02])
    orphan.set_user_attr(HOST_ATTR, socket.gethostname())
    orphan.set_user_attr(PID_ATTR, dead.pid)
    alive = study.ask()
    alive.set_user_attr(HOST_ATTR, socket.gethostname())
    alive.set_user_attr(PID_ATTR, os.getpid())
    assert fail_interrupted(study) == [orphan.number]
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states[orphan.number] == "FAIL" and states[alive.number] == "RUNNING"
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [orphan.params]


OPEN_STUDY = """
import sys
from pathlib import Path
from seqlm.tune.space import parse_space
from seqlm.tune.study import open_study
from seqlm.tune.trials import Tuning
search = parse_space({"space": {"train.lr": [0.01]}}, "s.yaml")
tuning = Tuning(Path(sys.argv[1]), "s", search, "tiny", "s-tiny", "sqlite:///tune/studies.db", 5.0, 0.0)
open_study(tuning).enqueue_trial({"train.lr": 0.01}, skip_if_exists=True)
"""


def test_workers_that_start_at_once_open_one_new_study_without_a_race(tmp_path):
    for attempt in range(3):
        root = tmp_path / str(attempt)
        root.mkdir()
        procs = [
            subprocess.Popen([sys.executable, "-c", OPEN_STUDY, str(root)], stderr=subprocess.PIPE)
            for _ in range(4)
        ]
        errors = [proc.communicate(timeout=120)[1].decode() for proc in procs]
        assert [proc.returncode for proc in procs] == [0] * 4, errors
        url = f"sqlite:///{root / 'tune' / 'studies.db'}"
        assert len(optuna.load_study(study_name="s-tiny", storage=url).get_trials()) == 1


def test_the_recipe_holds_the_best_trial_its_figure_and_the_command(tmp_path):
    tuning = tuning_for(
        tmp_path,
        {"space": {"train.lr": [0.01, 0.02]}, "fixed": {"train.budget_minutes": 2.0}},
        trial_minutes=2.0,
    )
    study = optuna.create_study()
    study.add_trial(
        optuna.trial.create_trial(
            params={"train.lr": 0.02},
            distributions={"train.lr": optuna.distributions.CategoricalDistribution([0.01, 0.02])},
            value=9.5,
        )
    )
    text = recipe_text(tuning, study, study.best_trial)
    assert "best val perplexity 9.5000 with a training budget of 2 minutes" in text
    assert "dvc exp run -S dataset=tiny -S recipe=tuned-tiny" in text
    assert yaml.safe_load(text) == {
        "recipe": "tuned-tiny",
        "train": {"budget_minutes": 2.0, "lr": 0.02},
    }
    assert nested({"model": "gru", "net.dropout": 0.1}) == {"model": "gru", "net": {"dropout": 0.1}}


# --- end to end: the real dvc and Optuna on a tiny corpus ----------------------------------------------

TINY_PRESET = {
    "dataset": "tiny",
    "tokenize": {"train_fraction": 0.8, "val_fraction": 0.1, "test_fraction": 0.1},
    "net": {"embedding_size": 16, "hidden_size": 24},
    "train": {"epochs": 3, "batch_size": 4, "num_steps": 16, "warmup_steps": 2, "eval_every": 10},
}


def tune_project(new_dvc_project, root: Path, text: str):
    """A copy of the pipeline with conf/ (Hydra on) and a preset ``tiny`` reading ``text``."""
    import hashlib

    project = new_dvc_project(root)
    shutil.copytree(REPO_ROOT / "conf", root / "conf")
    corpus = root.parent / f"{root.name}-corpus.txt"
    corpus.write_text(text)
    preset = {
        **TINY_PRESET,
        "download": {"url": corpus.as_uri(), "sha1": hashlib.sha1(text.encode()).hexdigest()},
    }
    (root / "conf" / "dataset" / "tiny.yaml").write_text(
        "# @package _global_\n" + yaml.safe_dump(preset, sort_keys=False)
    )
    project.dvc("config", "hydra.enabled", "true")
    project.git("add", "-A")
    project.git("commit", "-qm", "conf/ and the tiny preset")
    return project


def write_search(project, name: str, data: dict) -> None:
    (project.root / "conf" / "search" / f"{name}.yaml").write_text(yaml.safe_dump(data))


def seqlm_tune(project, *args: str, check: bool = True):
    return project.run(sys.executable, "-m", "seqlm.ops.tune", *args, check=check)


def trials_of(project, study: str) -> list:
    url = f"sqlite:///{project.root / 'tune' / 'studies.db'}"
    return optuna.load_study(study_name=study, storage=url).get_trials()


def experiments(project) -> dict[str, dict]:
    """``dvc exp show --json``: each experiment's name and params."""
    shown = json.loads(project.dvc("exp", "show", "--json").stdout)
    found = {}
    for entry in shown:
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
                found[rev.get("name") or exp.get("name")] = params
    return found


@pytest.mark.slow
def test_two_trials_run_at_once_one_is_pruned_and_the_best_becomes_a_recipe(
    tmp_path, tiny_text, new_dvc_project
):
    project = tune_project(new_dvc_project, tmp_path / "project", tiny_text * 4)
    write_search(
        project,
        "lr",
        {
            "sampler": "grid",
            "pruner": {"name": "threshold", "upper": 15.0, "warmup": 3},
            "space": {"train.lr": [0.00001, 0.02]},
        },
    )
    run = seqlm_tune(project, "lr", "--dataset", "tiny", "--minutes", "5", "--workers", "2")
    trials = {t.params["train.lr"]: t for t in trials_of(project, "lr-tiny")}
    assert set(trials) == {0.00001, 0.02}
    slow, good = trials[0.00001], trials[0.02]
    assert slow.state.name == "PRUNED" and max(slow.intermediate_values) == 3  # at its 4th
    assert good.state.name == "COMPLETE" and len(good.intermediate_values) > 4
    assert good.value == pytest.approx(min(good.intermediate_values.values()))
    # side by side: each started before the other ended
    assert (
        slow.datetime_start < good.datetime_complete
        and good.datetime_start < slow.datetime_complete
    )
    # the completed trial is a DVC experiment with its params; the pruned one left none
    exps = experiments(project)
    assert exps[f"lr-tiny-{good.number}"]["train"]["lr"] == 0.02
    assert f"lr-tiny-{slow.number}" not in exps
    assert not (project.root / "metrics" / "eval.json").exists()  # test was never scored
    recipe = project.root / "conf" / "recipe" / "tuned-tiny.yaml"
    assert yaml.safe_load(recipe.read_text())["train"]["lr"] == 0.02
    assert "dvc exp run -S dataset=tiny -S recipe=tuned-tiny" in run.stdout
    project.run(sys.executable, "-m", "seqlm.ops.presets", "dataset=tiny", "recipe=tuned-tiny")
    assert project.params()["train"]["lr"] == 0.02 and project.params()["recipe"] == "tuned-tiny"


@pytest.mark.slow
def test_a_crashed_trial_is_recorded_as_failed_and_the_study_goes_on(
    tmp_path, tiny_text, new_dvc_project
):
    project = tune_project(new_dvc_project, tmp_path / "project", tiny_text * 4)
    # a Transformer 24 wide: 5 heads do not divide it (the train stage refuses), 6 do
    write_search(
        project,
        "heads",
        {
            "sampler": "grid",
            "pruner": "none",
            "fixed": {"model": "transformer", "net.context": 16, "train.epochs": 1},
            "space": {"net.heads": [5, 6]},
        },
    )
    # run as `.venv/bin/seqlm tune` from a shell that never activated the environment: neither
    # dvc nor the stages' python on PATH (the tuner runs its own, and its stages find it)
    bin_dir = str(Path(sys.executable).parent)
    path = [p for p in project.env["PATH"].split(os.pathsep) if p and p != bin_dir]
    project.env["PATH"] = os.pathsep.join(path)
    assert shutil.which("dvc", path=project.env["PATH"]) is None
    run = seqlm_tune(project, "heads", "--dataset", "tiny", "--minutes", "5", "--workers", "1")
    states = {t.params["net.heads"]: t.state.name for t in trials_of(project, "heads-tiny")}
    assert states == {5: "FAIL", 6: "COMPLETE"}
    assert "not divisible by net.heads = 5" in run.stderr  # the failed trial's log, its end
    assert yaml.safe_load((project.root / "conf/recipe/tuned-tiny.yaml").read_text())["net"] == {
        "context": 16,
        "heads": 6,
    }


@pytest.mark.slow
def test_two_workers_share_one_study_and_a_rerun_continues_it(tmp_path, tiny_text, new_dvc_project):
    project = tune_project(new_dvc_project, tmp_path / "project", tiny_text * 4)
    write_search(
        project,
        "lr",
        {"pruner": "none", "space": {"train.lr": {"low": 0.001, "high": 0.03, "log": True}}},
    )
    args = [sys.executable, "-m", "seqlm.ops.tune", "lr", "--dataset", "tiny", "--minutes", "5"]
    args += ["--workers", "1", "--trials", "2"]
    procs = [
        subprocess.Popen(
            args,
            cwd=project.root,
            env=project.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=600)[0].decode() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    first = trials_of(project, "lr-tiny")
    assert [t.state.name for t in first] == ["COMPLETE", "COMPLETE"]
    # the first trial is the params as they are (config.yaml's learning rate)
    assert first[0].params == {"train.lr": 0.006} and first[0].user_attrs["start"] is True
    assert {t.user_attrs[PID_ATTR] for t in first} == {proc.pid for proc in procs}
    # rerun with one more: the two finished trials are kept, one is added
    seqlm_tune(
        project, "lr", "--dataset", "tiny", "--minutes", "5", "--workers", "1", "--trials", "3"
    )
    again = trials_of(project, "lr-tiny")
    assert len(again) == 3 and [t.params for t in again[:2]] == [t.params for t in first]
    assert [t.value for t in again[:2]] == [t.value for t in first]
    done = seqlm_tune(project, "lr", "--dataset", "tiny", "--trials", "3", "--minutes", "5")
    assert "none to run" in done.stderr and len(trials_of(project, "lr-tiny")) == 3


@pytest.mark.slow
def test_a_tuner_killed_mid_trial_is_continued_by_a_rerun_that_draws_that_trial_again(
    tmp_path, tiny_text, new_dvc_project
):
    import psutil

    project = tune_project(new_dvc_project, tmp_path / "project", tiny_text * 4)
    write_search(
        project,
        "lr",
        {
            "pruner": "none",
            "fixed": {"train.epochs": 6},
            "space": {"train.lr": {"low": 0.001, "high": 0.03, "log": True}},
        },
    )
    args = [sys.executable, "-m", "seqlm.ops.tune", "lr", "--dataset", "tiny", "--minutes", "5"]
    args += ["--workers", "1", "--trials", "2"]
    tuner = subprocess.Popen(
        args,
        cwd=project.root,
        env=project.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first_report = project.root / "tune" / "lr-tiny" / "trial-0" / "report-0.json"
    deadline = time.monotonic() + 300
    while not first_report.exists():
        assert time.monotonic() < deadline and tuner.poll() is None
        time.sleep(0.1)
    training = psutil.Process(tuner.pid).children(recursive=True)
    tuner.kill()  # kill -9: no clean-up
    tuner.wait()
    gone, alive = psutil.wait_procs(training, timeout=60)  # the trial ends once it sees that
    assert not alive
    [interrupted] = trials_of(project, "lr-tiny")
    assert interrupted.state.name == "RUNNING"  # as the killed tuner left it
    seqlm_tune(
        project, "lr", "--dataset", "tiny", "--minutes", "5", "--workers", "1", "--trials", "2"
    )
    trials = trials_of(project, "lr-tiny")
    assert trials[0].state.name == "FAIL"
    retried = [t for t in trials if t.user_attrs.get("retry_of") == 0]
    assert len(retried) == 1 and retried[0].params == interrupted.params
    assert [t.state.name for t in trials[1:]] == ["COMPLETE", "COMPLETE"]


def tuning_choices(project) -> dict:
    trials = trials_of(project, "blind-tiny")
    return {
        "params": [t.params for t in trials],
        "states": [t.state.name for t in trials],
        "val figures": [t.intermediate_values for t in trials],
        "recipe": (project.root / "conf" / "recipe" / "tuned-tiny.yaml").read_text(),
    }


@pytest.mark.slow
def test_tuning_is_blind_to_the_test_split(tmp_path, tiny_text, new_dvc_project):
    from test_blind_to_test import with_test_lines_reversed

    text = tiny_text * 4
    search = {
        "seed": 1,
        "pruner": {"name": "median", "startup_trials": 1, "warmup": 2},
        "space": {"train.lr": {"low": 0.0005, "high": 0.03, "log": True}},
    }
    choices = []
    for name, corpus in (("as-is", text), ("reversed", with_test_lines_reversed(text))):
        project = tune_project(new_dvc_project, tmp_path / name, corpus)
        write_search(project, "blind", search)
        seqlm_tune(
            project,
            "blind",
            "--dataset",
            "tiny",
            "--minutes",
            "5",
            "--workers",
            "1",
            "--trials",
            "3",
        )
        choices.append(tuning_choices(project))
    assert corpus != text
    assert choices[0] == choices[1]
    assert "PRUNED" in choices[0]["states"] or len(set(map(str, choices[0]["params"]))) == 3
