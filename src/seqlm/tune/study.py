"""The study behind ``seqlm tune``: trials as DVC experiments, judged on val, pruned as they go.

Each trial is one ``dvc exp run --temp -n <study>-<number> -S dataset=<preset> -S key=value ...
train``: a real experiment (``dvc exp show`` lists it with its params and metrics), run outside the
workspace so that several run side by side, up to the train stage only (the objective is the train
stage's best val perplexity; the evaluate stage, which scores test, never runs). While it trains,
every val evaluation reaches the study through :mod:`seqlm.neural.trial` and is reported to Optuna's
pruner, whose verdict the training waits for; a pruned trial stops there and leaves no experiment
(its model was cut short by the tuner, not by its params). A trial whose run fails is recorded as
failed and the study goes on.

The study lives in Optuna's storage: by default the SQLite file :data:`DEFAULT_STORAGE`, or any
database URL Optuna supports, so that workers on several machines share one study. Rerun, the same
command continues the study: finished trials are kept, a trial left running by a killed tuner on this
machine is marked failed and drawn again. The trials' folders and logs are in ``tune/<study>/``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from seqlm.core.atomic import write_text
from seqlm.core.errors import SeqlmError
from seqlm.neural.trial import GO, PRUNE, TRIAL_DIR_ENV, read_reports, verdict_path
from seqlm.tune.space import SearchSpace

log = logging.getLogger("seqlm.tune")

STUDY_DIR = "tune"
DEFAULT_STORAGE = f"sqlite:///{STUDY_DIR}/studies.db"
OBJECTIVE = "best_val_perplexity"  # metrics/train.json's key: the best val evaluation's perplexity
HOST_ATTR, PID_ATTR, EXP_ATTR = "host", "pid", "experiment"
POLL_S = 0.1
MAX_FAILURES = 3  # trials failed in a row before a worker gives up


class TrialFailed(SeqlmError):
    """A trial's ``dvc exp run`` failed (not a pruning): recorded as failed, the study goes on."""


@dataclass
class Tuning:
    """One ``seqlm tune`` run: the study, its search and where and how long it runs."""

    root: Path
    search_name: str
    search: SearchSpace
    dataset: str
    study_name: str
    storage: str
    minutes: float
    trial_minutes: float  # train.budget_minutes in the trials (0: bounded by epochs or steps)
    trials: int | None = None  # finished trials the study should have; None: until time is up
    workers: int = 1
    search_file: str = ""  # where the search was read from, for the recipe's comment
    running: dict[int, subprocess.Popen] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def folder(self) -> Path:
        return self.root / STUDY_DIR / self.study_name


# --- one trial ---------------------------------------------------------------------------------------


def hydra_value(value: Any) -> str:
    """``value`` as a Hydra override writes it (``dvc exp run -S key=<this>``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    text = str(value)
    return text if re.fullmatch(r"[A-Za-z_][\w\-]*", text) else json.dumps(text)


def set_args(dataset: str, values: Mapping[str, Any]) -> list[str]:
    """The ``-S`` arguments of a trial: the dataset preset, then every value."""
    args = ["-S", f"dataset={dataset}"]
    for key, value in values.items():
        args += ["-S", f"{key}={hydra_value(value)}"]
    return args


def trial_command(name: str, dataset: str, values: Mapping[str, Any]) -> list[str]:
    return ["dvc", "exp", "run", "--temp", "-n", name, *set_args(dataset, values), "train"]


def experiment_ref(root: Path, name: str) -> str | None:
    """The git ref of the experiment named ``name`` (None if there is none)."""
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/exps"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    found = [ref for ref in refs if ref.rsplit("/", 1)[-1] == name]
    return found[0] if found else None


def experiment_metrics(root: Path, name: str) -> dict[str, Any]:
    """``metrics/train.json`` as the experiment ``name`` committed it."""
    ref = experiment_ref(root, name)
    if ref is None:
        raise TrialFailed(f"dvc exp run ended without an experiment named {name!r}")
    shown = subprocess.run(
        ["git", "show", f"{ref}:metrics/train.json"], cwd=root, capture_output=True, text=True
    )
    if shown.returncode:
        raise TrialFailed(f"experiment {name!r} has no metrics/train.json: {shown.stderr.strip()}")
    return json.loads(shown.stdout)


def tail(path: Path, lines: int = 8) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def judge(trial: Any, folder: Path, start: int) -> tuple[int, bool]:
    """Report the evaluations written since ``start`` to the pruner and give each its verdict.
    Returns the next index and whether the trial was pruned."""
    for report in read_reports(folder, start):
        index = report["evaluation"]
        trial.report(report["val_perplexity"], index)
        pruned = trial.should_prune()
        write_text(verdict_path(folder, index), PRUNE if pruned else GO)
        start = index + 1
        if pruned:
            return start, True
    return start, False


def run_trial(tuning: Tuning, trial: Any) -> float:
    """Run one trial to its end; its objective (the best val perplexity), or optuna.TrialPruned."""
    import optuna

    values = {**tuning.search.fixed, **tuning.search.suggest(trial)}
    name = f"{tuning.study_name}-{trial.number}"
    trial.set_user_attr(HOST_ATTR, socket.gethostname())
    trial.set_user_attr(PID_ATTR, os.getpid())
    folder = tuning.folder / f"trial-{trial.number}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    logfile = tuning.folder / f"trial-{trial.number}.log"
    drawn = ", ".join(f"{k}={hydra_value(trial.params[k])}" for k in tuning.search.space)
    log.info("trial %d: %s (log: %s)", trial.number, drawn, logfile.relative_to(tuning.root))
    if experiment_ref(tuning.root, name) is not None:
        log.warning("replacing experiment %s, left by an earlier study of this name", name)
        subprocess.run(["dvc", "exp", "remove", name], cwd=tuning.root, capture_output=True)
    env = {**os.environ, TRIAL_DIR_ENV: str(folder.resolve())}
    started = time.monotonic()
    with open(logfile, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            trial_command(name, tuning.dataset, values),
            cwd=tuning.root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the tuner stops it with its stages
        )
        with tuning.lock:
            tuning.running[trial.number] = proc
        try:
            index, pruned = 0, False
            while True:
                done = proc.poll() is not None
                index, pruned = judge(trial, folder, index)
                if pruned or done:
                    break
                time.sleep(POLL_S)
            proc.wait()
        finally:
            with tuning.lock:
                tuning.running.pop(trial.number, None)
    minutes = (time.monotonic() - started) / 60
    if pruned:
        log.info("trial %d pruned at evaluation %d (%.1f min)", trial.number, index - 1, minutes)
        raise optuna.TrialPruned(f"val perplexity behind the study's at evaluation {index - 1}")
    if proc.returncode:
        raise TrialFailed(
            f"trial {trial.number} failed (dvc exp run exited {proc.returncode}); the end of "
            f"{logfile}:\n{tail(logfile)}"
        )
    value = float(experiment_metrics(tuning.root, name)[OBJECTIVE])
    trial.set_user_attr(EXP_ATTR, name)
    log.info(
        "trial %d: val perplexity %.4f (%.1f min), experiment %s",
        trial.number,
        value,
        minutes,
        name,
    )
    return value


def stop_running(tuning: Tuning) -> None:
    """Stop every trial still running (their process groups: dvc and its stage)."""
    with tuning.lock:
        procs = list(tuning.running.values())
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


# --- the study ---------------------------------------------------------------------------------------


def make_sampler(search: SearchSpace) -> Any:
    import optuna

    if search.sampler == "grid":
        return optuna.samplers.GridSampler(search.grid(), seed=search.seed)
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=search.seed)
    return optuna.samplers.TPESampler(seed=search.seed)


def make_pruner(search: SearchSpace) -> Any:
    import optuna

    spec = search.pruner
    if spec.name == "none":
        return optuna.pruners.NopPruner()
    if spec.name == "threshold":
        return optuna.pruners.ThresholdPruner(upper=spec.upper, n_warmup_steps=spec.warmup)
    return optuna.pruners.MedianPruner(
        n_startup_trials=spec.startup_trials, n_warmup_steps=spec.warmup
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_interrupted(study: Any) -> list[int]:
    """Trials left running by a tuner of this machine that is no longer alive: marked failed and
    their params drawn again (enqueued). Returns their numbers."""
    import optuna
    from optuna.trial import TrialState

    host = socket.gethostname()
    found = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get(PID_ATTR)
        if t.user_attrs.get(HOST_ATTR) != host or pid is None or pid_alive(pid):
            continue
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        found.append(t.number)
    if found:
        optuna.logging.get_logger("optuna")  # keep Optuna's logger configured as seqlm set it
        log.info("trials %s were left running by a stopped tuner: failed, drawn again", found)
    return found


def finished(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def open_study(tuning: Tuning, load_only: bool = False) -> Any:
    import optuna

    if tuning.storage.startswith("sqlite:///") and not tuning.storage.startswith("sqlite:////"):
        (tuning.root / tuning.storage.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    return optuna.create_study(
        study_name=tuning.study_name,
        storage=storage_url(tuning),
        sampler=make_sampler(tuning.search),
        pruner=make_pruner(tuning.search),
        direction="minimize",
        load_if_exists=True,
    )


def storage_url(tuning: Tuning) -> str:
    """The storage URL, a relative SQLite path taken from the project's root."""
    url = tuning.storage
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return "sqlite:///" + str((tuning.root / url.removeprefix("sqlite:///")).resolve())
    return url


def tune(tuning: Tuning) -> Any:
    """Run trials, ``workers`` at a time, until the study has ``trials`` finished ones (counting
    those of earlier runs and of other workers sharing the storage), the grid is done, or no trial
    would end within the time; the study. Ctrl-C or SIGTERM stops the running trials (recorded as
    failed) and raises KeyboardInterrupt."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(tuning)
    fail_interrupted(study)
    target = tuning.trials
    if tuning.search.sampler == "grid":
        size = tuning.search.size() or 0
        target = size if target is None else min(target, size)
    done = len(finished(study))
    if target is not None and done >= target:
        log.info("study %s already has %d finished trials: none to run", tuning.study_name, done)
        return study
    log.info(
        "study %s (%s): %d finished trials so far; %s, %d at a time, within %g minutes%s",
        tuning.study_name,
        tuning.storage,
        done,
        f"up to {target} trials" if target else "trials",
        tuning.workers,
        tuning.minutes,
        f" (each trains {tuning.trial_minutes:g} min)" if tuning.trial_minutes else "",
    )
    # no trial starts later than one trial's budget before the end of the study's
    deadline = time.monotonic() + max(60 * (tuning.minutes - tuning.trial_minutes), 0.0)
    stop = threading.Event()
    workers = [
        threading.Thread(target=work, args=(tuning, study, target, deadline, stop), daemon=True)
        for _ in range(tuning.workers)
    ]
    previous = signal.getsignal(signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, interrupt)
    try:
        for thread in workers:
            thread.start()
            time.sleep(0.5)  # one ask at a time: the sampler sees the trial before
        for thread in workers:
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        stop.set()
        log.warning("stopping: the running trials are ended and recorded as failed")
        stop_running(tuning)
        for thread in workers:
            thread.join()
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    return study


def interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def numbered_trial(tuning: Tuning, numbers: list[int], trial: Any) -> float:
    """:func:`run_trial`, its number appended to ``numbers`` first (the worker's record)."""
    numbers.append(trial.number)
    return run_trial(tuning, trial)


def work(tuning: Tuning, study: Any, target: int | None, deadline: float, stop: Any) -> None:
    """One worker: a trial at a time (Optuna's optimize, one trial a call, so that the samplers and
    pruners run as Optuna runs them) until the study has enough, the time is up, ``stop`` is set,
    or the grid is done (its size is the target). Too many failures in a row stop it (a broken
    set-up, not a bad trial)."""
    from optuna.trial import TrialState

    failures = 0
    while not stop.is_set() and time.monotonic() <= deadline:
        if target is not None:
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if len(finished(study)) + len(running) >= target:
                return
        numbers: list[int] = []
        study.optimize(
            partial(numbered_trial, tuning, numbers),
            n_trials=1,
            catch=(TrialFailed,),
            gc_after_trial=False,
            show_progress_bar=False,
        )
        states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
        if numbers and states[numbers[-1]] == TrialState.FAIL:
            failures += 1
            if failures >= MAX_FAILURES:
                log.error("%d trials failed in a row: this worker stops", failures)
                return
        else:
            failures = 0


# --- the recipe --------------------------------------------------------------------------------------


def best_trial(study: Any) -> Any | None:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return min(complete, key=lambda t: (t.value, t.number)) if complete else None


def nested(values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"train.lr": 1}`` → ``{"train": {"lr": 1}}`` (``model`` stays at the top)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        section, _, name = key.partition(".")
        if name:
            out.setdefault(section, {})[name] = value
        else:
            out[section] = value
    return out


def recipe_name(dataset: str) -> str:
    return f"tuned-{dataset}"


def recipe_text(tuning: Tuning, study: Any, trial: Any) -> str:
    """The best trial as a recipe (``conf/recipe/tuned-<dataset>.yaml``), its figures in a comment."""
    values = {**tuning.search.fixed, **trial.params}
    counts = {
        state: sum(t.state.name == state for t in study.get_trials(deepcopy=False))
        for state in ("COMPLETE", "PRUNED", "FAIL")
    }
    budget = values.get("train.budget_minutes", tuning.trial_minutes)
    head = [
        "# @package _global_",
        f"# Tuned on val by `seqlm tune {tuning.search_name} --dataset {tuning.dataset}` "
        f"({tuning.search_file or tuning.search_name}; study {tuning.study_name!r}):",
        f"# trial {trial.number}, best val perplexity {trial.value:.4f}"
        + (f" with a training budget of {budget:g} minutes" if budget else ""),
        f"# ({counts['COMPLETE']} trials completed, {counts['PRUNED']} pruned, {counts['FAIL']} failed).",
        f"#   dvc exp run -S dataset={tuning.dataset} -S recipe={recipe_name(tuning.dataset)}",
    ]
    body = {"recipe": recipe_name(tuning.dataset), **nested(values)}
    return "\n".join(head) + "\n" + yaml.safe_dump(body, sort_keys=False)


def write_recipe(tuning: Tuning, study: Any, conf_dir: Path) -> Path | None:
    """Write the best trial as a recipe; None when no trial has completed."""
    trial = best_trial(study)
    if trial is None:
        return None
    path = conf_dir / "recipe" / f"{recipe_name(tuning.dataset)}.yaml"
    write_text(path, recipe_text(tuning, study, trial))
    return path


def trial_rows(study: Any) -> Sequence[tuple[int, str, str, str]]:
    """(number, state, val perplexity, params) of every trial, in order."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        value = f"{t.value:.4f}" if t.value is not None else "-"
        if t.state.name == "PRUNED" and t.intermediate_values:
            last = max(t.intermediate_values)
            value = f"({t.intermediate_values[last]:.4f} at evaluation {last})"
        params = ", ".join(f"{k}={hydra_value(v)}" for k, v in t.params.items())
        rows.append((t.number, t.state.name.lower(), value, params))
    return rows
