"""One trial of ``seqlm tune``: a ``dvc exp run`` up to the train stage, judged as it trains.

Each trial is ``dvc exp run --temp -n <study>-<number> -S dataset=<preset> -S key=value ... train``:
a real experiment (``dvc exp show`` lists it with its params and metrics), run outside the workspace
so that several run side by side, up to the train stage only (the objective is the train stage's best
val perplexity; the evaluate stage, which scores test, never runs). While it trains, every val
evaluation reaches the study through :mod:`seqlm.neural.trial` and is reported to Optuna's pruner,
whose verdict the training waits for; a pruned trial stops there and leaves no experiment (its model
was cut short by the tuner, not by its params). A trial whose run fails raises :class:`TrialFailed`.

Side by side, trials share the project's DVC cache, whose run cache is not safe for two runs of one
stage at once: a run looking a stage up takes the newest file in the stage's folder, which may be
another run's entry still being written, finds it unreadable and deletes it, and the other run then
fails (``No such file or directory: .dvc/cache/runs/...tmp``). So trials reach their training one at
a time (:class:`StartLock`): the stages before training run once, the next trials take them from the
run cache, and only the trainings overlap. A trial drawn with the same values as a running one waits
for it to end (the run cache then hands it that trial's result, as it would to any rerun).
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqlm.core.atomic import write_text
from seqlm.core.errors import SeqlmError
from seqlm.neural.trial import (
    GO,
    PRUNE,
    TRIAL_DIR_ENV,
    TUNER_PID_ENV,
    read_reports,
    started_path,
    verdict_path,
)
from seqlm.ops.dvc_env import dvc_command, dvc_env
from seqlm.tune.space import SearchSpace

log = logging.getLogger("seqlm.tune")

STUDY_DIR = "tune"
DEFAULT_STORAGE = f"sqlite:///{STUDY_DIR}/studies.db"
OBJECTIVE = "best_val_perplexity"  # metrics/train.json's key: the best val evaluation's perplexity
HOST_ATTR, PID_ATTR, EXP_ATTR = "host", "pid", "experiment"
POLL_S = 0.1
START_LOCK = "trial-start.lock"  # in STUDY_DIR: see StartLock


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
    start: dict[str, Any] = field(default_factory=dict)  # the composed params' value of each key
    running: dict[int, subprocess.Popen] = field(default_factory=dict)
    drawn: dict[int, dict[str, Any]] = field(default_factory=dict)  # the running trials' values
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)  # set on Ctrl-C / SIGTERM

    @property
    def folder(self) -> Path:
        return self.root / STUDY_DIR / self.study_name

    def trial_folder(self, number: int) -> Path:
        """Trial ``number``'s channel with its training (:mod:`seqlm.neural.trial`)."""
        return self.folder / f"trial-{number}"

    def trial_log(self, number: int) -> Path:
        """Trial ``number``'s ``dvc exp run`` output."""
        return self.folder / f"trial-{number}.log"


class StartLock:
    """The project's trial-start lock, ``tune/trial-start.lock``: a trial holds it from the start of
    its ``dvc exp run`` until its train stage has begun (the ``started`` marker of
    :mod:`seqlm.neural.trial`) or the run has ended, so that no two trials run or look up the stages
    before training at once (see the module's text). A file lock: tuners sharing the project on this
    machine take turns too."""

    def __init__(self, root: Path) -> None:
        self.path = root / STUDY_DIR / START_LOCK
        self.handle: Any = None

    def acquire(self, stopping: threading.Event) -> None:
        """Wait for the lock; :class:`TrialFailed` if ``stopping`` is set first."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a")  # noqa: SIM115 (held across calls, closed by release)
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.handle = handle
                return
            except BlockingIOError:
                if stopping.is_set():
                    handle.close()
                    raise TrialFailed("the tuner stopped before this trial started") from None
                time.sleep(POLL_S)

    def release(self) -> None:
        if self.handle is not None:
            import fcntl

            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def wait_for_twins(tuning: Tuning, number: int, values: dict[str, Any]) -> None:
    """Wait while another running trial of this tuner has ``values``; :class:`TrialFailed` if the
    tuner stops first."""
    while True:
        with tuning.lock:
            if not any(n != number and drawn == values for n, drawn in tuning.drawn.items()):
                tuning.drawn[number] = values
                return
        if tuning.stopping.is_set():
            raise TrialFailed("the tuner stopped before this trial started")
        time.sleep(POLL_S)


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


def shown(value: Any) -> str:
    """A value for the log: floats to four significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else hydra_value(value)


def set_args(dataset: str, values: Mapping[str, Any]) -> list[str]:
    """The ``-S`` arguments of a trial: the dataset preset, then every value."""
    args = ["-S", f"dataset={dataset}"]
    for key, value in values.items():
        args += ["-S", f"{key}={hydra_value(value)}"]
    return args


def trial_command(name: str, dataset: str, values: Mapping[str, Any]) -> list[str]:
    """``dvc exp run --temp -n NAME -S ... train``, as this interpreter's dvc (run it with
    :func:`seqlm.ops.dvc_env.dvc_env`)."""
    return dvc_command("exp", "run", "--temp", "-n", name, *set_args(dataset, values), "train")


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
    folder = tuning.trial_folder(trial.number)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    logfile = tuning.trial_log(trial.number)
    drawn = ", ".join(f"{k}={shown(trial.params[k])}" for k in tuning.search.space)
    log.info("trial %d: %s (log: %s)", trial.number, drawn, logfile.relative_to(tuning.root))
    if experiment_ref(tuning.root, name) is not None:
        log.warning("replacing experiment %s, left by an earlier study of this name", name)
        remove = dvc_command("exp", "remove", name)
        subprocess.run(remove, cwd=tuning.root, capture_output=True, env=dvc_env())
    env = dvc_env({TRIAL_DIR_ENV: str(folder.resolve()), TUNER_PID_ENV: str(os.getpid())})
    drawn_at = time.monotonic()
    wait_for_twins(tuning, trial.number, values)
    try:
        command = trial_command(name, tuning.dataset, values)
        returncode, index, pruned, started = watch(tuning, trial, command, env)
    finally:
        with tuning.lock:
            tuning.drawn.pop(trial.number, None)
    minutes = run_minutes(drawn_at, started)
    if pruned:
        log.info("trial %d pruned at evaluation %d (%s)", trial.number, index - 1, minutes)
        raise optuna.TrialPruned(f"val perplexity behind the study's at evaluation {index - 1}")
    if returncode:
        raise TrialFailed(
            f"trial {trial.number} failed (dvc exp run exited {returncode}); the end of "
            f"{logfile}:\n{tail(logfile)}"
        )
    value = float(experiment_metrics(tuning.root, name)[OBJECTIVE])
    trial.set_user_attr(EXP_ATTR, name)
    log.info(
        "trial %d: val perplexity %.4f (%s), experiment %s",
        trial.number,
        value,
        minutes,
        name,
    )
    return value


def run_minutes(drawn_at: float, started: float) -> str:
    """How long a trial ran from its ``dvc exp run`` (``started``) on, and how long it waited for
    the start lock or a twin before (from ``drawn_at``), for the log: "6.1 min" or "6.1 min after
    0.4 min waiting" (``time.monotonic`` readings)."""
    ran, waited = (time.monotonic() - started) / 60, (started - drawn_at) / 60
    return f"{ran:.1f} min" + (f" after {waited:.1f} min waiting" if waited >= 0.05 else "")


def watch(
    tuning: Tuning, trial: Any, command: list[str], env: dict[str, str]
) -> tuple[int, int, bool, float]:
    """Run a trial's ``command`` (its start under the :class:`StartLock`) and judge its evaluations
    until it ends or is pruned: its exit status, the next evaluation's index, whether it was
    pruned and when its command started (``time.monotonic``)."""
    folder = tuning.trial_folder(trial.number)
    gate = StartLock(tuning.root)
    gate.acquire(tuning.stopping)
    started = time.monotonic()
    try:
        with open(tuning.trial_log(trial.number), "w", encoding="utf-8") as out:
            proc = subprocess.Popen(
                command,
                cwd=tuning.root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the tuner stops it with its stages
            )
        with tuning.lock:
            tuning.running[trial.number] = proc
        index, pruned = 0, False
        while True:
            done = proc.poll() is not None
            if started_path(folder).is_file():  # its stages before training are done
                gate.release()
            index, pruned = judge(trial, folder, index)
            if pruned or done:
                break
            time.sleep(POLL_S)
        return proc.wait(), index, pruned, started
    finally:
        gate.release()
        with tuning.lock:
            tuning.running.pop(trial.number, None)


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
