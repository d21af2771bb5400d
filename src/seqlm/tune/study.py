"""The study behind ``seqlm tune``: trials (:mod:`seqlm.tune.trials`: each a DVC experiment up to
the train stage, judged on val as it trains) run by workers, drawn by Optuna's sampler and stopped by
its pruner; a trial that fails is recorded as failed and the study goes on.

The study lives in Optuna's storage: by default the SQLite file
:data:`seqlm.tune.trials.DEFAULT_STORAGE`, or any database URL Optuna supports, so that workers on
several machines share one study. Rerun, the same command continues the study: finished trials are
kept, a trial left running by a killed tuner on this machine is marked failed and drawn again.
The trials' folders and logs are in ``tune/<study>/``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from seqlm.core.threads import process_alive
from seqlm.tune.space import SearchSpace
from seqlm.tune.trials import (
    HOST_ATTR,
    PID_ATTR,
    TrialFailed,
    Tuning,
    run_trial,
    stop_running,
)

log = logging.getLogger("seqlm.tune")
MAX_FAILURES = 3  # trials failed in a row before a worker gives up
OPEN_ATTEMPTS = 5  # tries at opening the storage (workers starting at once)


def make_sampler(search: SearchSpace) -> Any:
    import optuna

    if search.sampler == "grid":
        return optuna.samplers.GridSampler(search.grid(), seed=search.seed)
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=search.seed)
    return optuna.samplers.TPESampler(seed=search.seed, n_startup_trials=search.startup)


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


def fail_interrupted(study: Any) -> list[int]:
    """Trials left running by a tuner of this machine that is no longer alive: marked failed and
    their params drawn again (enqueued). Returns their numbers."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    found = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get(PID_ATTR)
        if t.user_attrs.get(HOST_ATTR) != host or pid is None or process_alive(pid):
            continue
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        found.append(t.number)
    if found:
        log.info("trials %s were left running by a stopped tuner: failed, drawn again", found)
    return found


def finished(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def open_study(tuning: Tuning) -> Any:
    """The study, created in its storage if it is not there yet. Workers that start at once would
    race to create the storage's tables: a SQLite file is opened under a lock file beside it, and
    any storage is retried a few times (the second attempt finds the tables made)."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    url = storage_url(tuning)
    lock = None
    if url.startswith("sqlite:///"):
        db = Path(url.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        lock = db.with_name(db.name + ".lock")
    for attempt in range(OPEN_ATTEMPTS):
        try:
            with file_lock(lock):
                return optuna.create_study(
                    study_name=tuning.study_name,
                    storage=url,
                    sampler=make_sampler(tuning.search),
                    pruner=make_pruner(tuning.search),
                    direction="minimize",
                    load_if_exists=True,
                )
        except (SQLAlchemyError, optuna.exceptions.DuplicatedStudyError):
            if attempt == OPEN_ATTEMPTS - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


@contextlib.contextmanager
def file_lock(path: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if need be) for the block; None: no lock."""
    if path is None:
        yield
        return
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
    start = tuning.search.starting_point(tuning.start)
    if start and tuning.search.sampler != "grid":
        # the params as they are, drawn first (once a study): the study can only improve on them
        study.enqueue_trial(start, user_attrs={"start": True}, skip_if_exists=True)
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
    workers = [
        threading.Thread(target=work, args=(tuning, study, target, deadline), daemon=True)
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
        tuning.stopping.set()
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


def work(tuning: Tuning, study: Any, target: int | None, deadline: float) -> None:
    """One worker: a trial at a time (Optuna's optimize, one trial a call, so that the samplers and
    pruners run as Optuna runs them) until the study has enough, the time is up, the tuner stops,
    or the grid is done (its size is the target). Too many failures in a row stop it (a broken
    set-up, not a bad trial)."""
    from optuna.trial import TrialState

    failures = 0
    while not tuning.stopping.is_set() and time.monotonic() <= deadline:
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
