"""A training's line to the tuner (``seqlm tune``): each evaluation reported, a verdict awaited.

``seqlm tune`` runs every trial as a ``dvc exp run`` with :data:`TRIAL_DIR_ENV` naming a folder of
its own. The train stage then writes each val evaluation there (``report-<n>.json``: the evaluation's
index from 0, its step, its minutes and val perplexity, written whole) and waits for the tuner's
verdict on it (``verdict-<n>``: ``go`` or ``prune``) before it trains on, so a pruned trial stops at
the evaluation that condemned it and every pruning decision is a function of the val figures alone.
A pruned training ends the stage with :class:`TrialPruned` (exit 1): its outputs are never cached by
DVC, whose run cache would otherwise hand the cut-short model to the next run of the same params.

Opening the channel writes ``started`` there: the train stage has begun (DVC has run or restored
every stage before it), which lets the tuner start its next trial (:class:`seqlm.tune.trials.StartLock`).
Without the variable (every run outside the tuner) training reports nothing. A tuner that gives no
verdict within :data:`VERDICT_WAIT_S` seconds is taken as ``go``; one that is no longer running
(:data:`TUNER_PID_ENV`, killed with ``kill -9`` say) ends the training as a pruned one at once, since
no study will read its result (a rerun of the tuner draws that trial again).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from seqlm.core.atomic import write_json, write_text
from seqlm.core.errors import SeqlmError
from seqlm.core.threads import process_alive
from seqlm.neural.records import Evaluation

log = logging.getLogger("seqlm.trial")

TRIAL_DIR_ENV = "SEQLM_TRIAL_DIR"
TUNER_PID_ENV = "SEQLM_TRIAL_TUNER_PID"
VERDICT_WAIT_S = 600.0
GO, PRUNE = "go", "prune"


class TrialPruned(SeqlmError):
    """The tuner stopped this training at an evaluation (a pruned trial of ``seqlm tune``)."""


def report_path(folder: Path, index: int) -> Path:
    return folder / f"report-{index}.json"


def verdict_path(folder: Path, index: int) -> Path:
    return folder / f"verdict-{index}"


def started_path(folder: Path) -> Path:
    """The marker a trial's train stage writes as it begins."""
    return folder / "started"


@dataclass
class TrialChannel:
    """The folder shared with the tuner; ``reported`` evaluations so far, ``pruned`` once told."""

    folder: Path
    tuner_pid: int | None = None
    wait_s: float = VERDICT_WAIT_S
    poll_s: float = 0.05
    reported: int = 0
    pruned: bool = False

    @classmethod
    def from_env(cls) -> TrialChannel | None:
        """The channel :data:`TRIAL_DIR_ENV` names, its ``started`` marker written; None when the
        variable is unset (not a tuner's trial)."""
        folder = os.environ.get(TRIAL_DIR_ENV)
        if not folder:
            return None
        pid = os.environ.get(TUNER_PID_ENV)
        channel = cls(Path(folder), int(pid) if pid else None)
        write_text(started_path(channel.folder), "")
        return channel

    def tuner_gone(self) -> bool:
        """Whether the tuner that started this trial has stopped running."""
        return self.tuner_pid is not None and not process_alive(self.tuner_pid)

    def report(self, record: Evaluation) -> bool:
        """Write the evaluation and wait for the verdict; True: the tuner pruned the trial."""
        index = self.reported
        figures = {
            "evaluation": index,
            "step": record.step,
            "minutes": record.elapsed / 60,
            "val_perplexity": record.val_perplexity,
        }
        write_json(report_path(self.folder, index), figures)
        self.reported += 1
        self.pruned = self.verdict(index) == PRUNE
        if self.pruned:
            log.info("the tuner pruned this trial at evaluation %d (step %d)", index, record.step)
        return self.pruned

    def verdict(self, index: int) -> str:
        """The tuner's verdict on evaluation ``index`` (``go`` if none comes in time)."""
        path, deadline = verdict_path(self.folder, index), time.monotonic() + self.wait_s
        while time.monotonic() < deadline:
            if path.is_file():
                text = path.read_text(encoding="utf-8").strip()
                if text in (GO, PRUNE):
                    return text
            if self.tuner_gone():
                log.warning("the tuner (pid %d) has stopped: this trial ends", self.tuner_pid)
                return PRUNE
            time.sleep(self.poll_s)
        log.warning(
            "no verdict from the tuner on evaluation %d in %.0f s: training on", index, self.wait_s
        )
        return GO


def read_reports(folder: Path, start: int = 0) -> list[dict]:
    """The reports in ``folder`` from index ``start`` on, in order, up to the first not yet written."""
    found = []
    index = start
    while (path := report_path(folder, index)).is_file():
        found.append(json.loads(path.read_text(encoding="utf-8")))
        index += 1
    return found
