"""Trials side by side reach their training one at a time: a trial's ``dvc exp run`` starts only
once the trial before it has begun training (or ended), and a trial drawn like a running one waits
for it, since DVC's run cache is not safe for two runs of one stage at once."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from seqlm.neural.trial import TRIAL_DIR_ENV, TrialChannel, started_path
from seqlm.tune.space import parse_space
from seqlm.tune.trials import (
    StartLock,
    TrialFailed,
    Tuning,
    run_minutes,
    wait_for_twins,
    watch,
)

# A stand-in for a trial's dvc exp run: its stages before training take a moment, then (unless told
# it fails there) its train stage opens the tuner's channel and trains a while.
FAKE_RUN = """
import sys, time
from pathlib import Path
events, name, outcome = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
def event(what):
    with events.open("a") as out:
        out.write(f"{name} {what}\\n")
event("begins")
time.sleep(0.5)
if outcome == "fails":
    event("ends")
    sys.exit(1)
from seqlm.neural.trial import TrialChannel
TrialChannel.from_env()
event("trains")
time.sleep(3.0)
event("ends")
"""


def tuning_in(root: Path) -> Tuning:
    search = parse_space({"space": {"train.lr": [0.01, 0.02]}}, "s.yaml")
    tuning = Tuning(root, "s", search, "tiny", "s-tiny", "sqlite:///tune/studies.db", 5.0, 0.0)
    tuning.folder.mkdir(parents=True)
    return tuning


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def run_side_by_side(tmp_path: Path, outcomes: list[str]) -> tuple[list[str], list[int]]:
    """Watch one fake run per outcome, each started once the one before has begun; the events in
    the order they happened and the runs' exit statuses."""
    tuning = tuning_in(tmp_path)
    events = tmp_path / "events"
    codes: dict[int, int] = {}

    def one(number: int, outcome: str) -> None:
        folder = tuning.trial_folder(number)
        folder.mkdir()
        command = [sys.executable, "-c", FAKE_RUN, str(events), f"trial-{number}", outcome]
        env = {"PATH": "", TRIAL_DIR_ENV: str(folder), "PYTHONPATH": ":".join(sys.path)}
        codes[number] = watch(tuning, SimpleNamespace(number=number), command, env)[0]

    threads = []
    for number, outcome in enumerate(outcomes):
        threads.append(threading.Thread(target=one, args=(number, outcome)))
        threads[-1].start()
        while threads[-1].is_alive() and f"trial-{number} begins" not in read(events):
            time.sleep(0.05)
        time.sleep(0.2)  # the next one asks while this one is in its stages before training
    for thread in threads:
        thread.join(timeout=60)
    return read(events).splitlines(), [codes[n] for n in range(len(outcomes))]


def test_a_trial_starts_its_run_only_once_the_one_before_trains(tmp_path):
    events, codes = run_side_by_side(tmp_path, ["trains", "trains"])
    assert codes == [0, 0]
    order = {event: n for n, event in enumerate(events)}
    assert order["trial-0 trains"] < order["trial-1 begins"]  # its stages were done first
    assert order["trial-1 begins"] < order["trial-0 ends"]  # and the trainings overlap


def test_a_run_that_ends_before_training_lets_the_next_one_start(tmp_path):
    events, codes = run_side_by_side(tmp_path, ["fails", "trains"])
    assert codes == [1, 0]
    assert events == [
        "trial-0 begins",
        "trial-0 ends",
        "trial-1 begins",
        "trial-1 trains",
        "trial-1 ends",
    ]


def test_a_trials_minutes_leave_out_the_time_it_waited_to_start():
    now = time.monotonic()
    assert run_minutes(now - 90, now - 60) == "1.0 min after 0.5 min waiting"
    assert run_minutes(now - 60, now - 60) == "1.0 min"


def test_opening_the_channel_marks_the_training_begun(tmp_path, monkeypatch):
    monkeypatch.setenv(TRIAL_DIR_ENV, str(tmp_path))
    assert not started_path(tmp_path).exists()
    TrialChannel.from_env()
    assert started_path(tmp_path).is_file()


def test_a_trial_drawn_like_a_running_one_waits_for_it_to_end(tmp_path):
    tuning = tuning_in(tmp_path)
    wait_for_twins(tuning, 0, {"train.lr": 0.01})
    wait_for_twins(tuning, 1, {"train.lr": 0.02})  # other values: no wait
    waited = threading.Event()

    def twin() -> None:
        wait_for_twins(tuning, 2, {"train.lr": 0.01})
        waited.set()

    thread = threading.Thread(target=twin)
    thread.start()
    time.sleep(0.5)
    assert not waited.is_set()  # trial 0 still runs with these values
    with tuning.lock:
        tuning.drawn.pop(0)
    thread.join(timeout=10)
    assert waited.is_set() and tuning.drawn == {1: {"train.lr": 0.02}, 2: {"train.lr": 0.01}}


def test_a_waiting_trial_fails_when_the_tuner_stops(tmp_path):
    tuning = tuning_in(tmp_path)
    wait_for_twins(tuning, 0, {"train.lr": 0.01})
    held = StartLock(tmp_path)
    held.acquire(tuning.stopping)
    tuning.stopping.set()
    with pytest.raises(TrialFailed, match="stopped before this trial started"):
        wait_for_twins(tuning, 1, {"train.lr": 0.01})
    with pytest.raises(TrialFailed, match="stopped before this trial started"):
        StartLock(tmp_path).acquire(tuning.stopping)
    held.release()
    StartLock(tmp_path).acquire(tuning.stopping)  # free again: taken at once, stopping or not
