"""What training records and keeps between steps: each evaluation's record, the run's result,
the steps between two evaluations, the best evaluation, where the run is, and the time budget.

:mod:`seqlm.neural.loop` fills them in; a resumable state (:mod:`seqlm.neural.resume`) saves
:class:`Progress` and :class:`Best` as plain values.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from seqlm.perplexity import SplitScore

TIMINGS = ("tokens_per_second", "train_seconds", "seconds", "elapsed")
"""The fields of :class:`EpochRecord` (and :class:`TrainResult`) that are wall-clock measurements:
two runs of the same params on the same machine agree on every other field, not on these."""


@dataclass(frozen=True)
class EpochRecord:
    """One evaluation's figures (logged to DVCLive by the stage): at every epoch's end, or every
    ``eval_every`` optimizer steps and at the last step. The train figures cover the steps since
    the previous evaluation."""

    epoch: int  # the epoch of the last step before the evaluation (1, 2, ...)
    train_perplexity: float  # exp of the mean training loss since the last evaluation (dropout on)
    val_perplexity: float
    val_bits_per_char: float
    lr: float  # of the last step
    tokens_per_second: float  # training tokens / training seconds (validation excluded)
    train_seconds: float  # wall time of the training steps since the last evaluation
    seconds: float  # wall time since the last evaluation, this validation included
    improved: bool
    step: int = 0  # optimizer steps taken before the evaluation, over the whole run
    elapsed: float = 0.0  # wall seconds since training started (a resumed run's earlier time too)


@dataclass
class TrainResult:
    """What ``metrics/train.json`` reports."""

    model: str
    parameters: int
    best_epoch: int
    best_val_perplexity: float
    best_val_bits_per_char: float
    epochs: int  # the epoch of the last evaluation (the last may be partial)
    stopped: str  # "epochs", "max_steps", "patience", "budget" or "callback"
    train_seconds: float
    tokens_per_second: float
    device: str
    steps: int = 0  # optimizer steps taken
    best_step: int = 0  # optimizer steps before the best evaluation
    history: list[EpochRecord] = field(default_factory=list)

    def to_metrics(self) -> dict[str, object]:
        """The JSON record (history excluded: DVCLive has the curves)."""
        out = asdict(self)
        out.pop("history")
        return out


@dataclass
class EpochSteps:
    """What the training steps between two evaluations gave (an epoch, unless ``eval_every``)."""

    epoch: int = 1  # of the last step
    loss_sum: float = 0.0  # mean batch loss × targets, summed
    tokens: int = 0  # targets trained on
    batches: int = 0  # optimizer steps taken
    lr: float = 0.0  # of the last step
    started: float = field(default_factory=time.perf_counter)
    train_seconds: float = 0.0  # wall time of the steps, the step hook's excluded
    stop_requested: bool = False  # by the step hook
    out_of_time: bool = False  # the budget ran out before the last epoch ended
    at_max_steps: bool = False  # max_steps reached
    stepped: bool = False  # the last batch made an optimizer step (fp16's scaler may skip one)

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss_sum / max(self.tokens, 1))

    def record(
        self, val: SplitScore, improved: bool, step: int, elapsed: float = 0.0
    ) -> EpochRecord:
        """The evaluation's record, given its val score, the optimizer steps so far and the wall
        seconds since training started."""
        return EpochRecord(
            epoch=self.epoch,
            train_perplexity=self.perplexity,
            val_perplexity=val.perplexity,
            val_bits_per_char=val.bits_per_char,
            lr=self.lr,
            tokens_per_second=self.tokens / max(self.train_seconds, 1e-9),
            train_seconds=self.train_seconds,
            seconds=time.perf_counter() - self.started,
            improved=improved,
            step=step,
            elapsed=elapsed,
        )


@dataclass(frozen=True)
class Best:
    """The best val evaluation so far (0: none yet); its weights are the checkpoint."""

    val_perplexity: float = math.inf
    val_bits_per_char: float = math.inf
    epoch: int = 0
    step: int = 0  # optimizer steps before it
    evaluation: int = 0  # its index in the history, from 1


@dataclass
class Progress:
    """Where training is, besides the weights and the updater (a resumable state saves it)."""

    epoch: int = 1  # the epoch being trained
    position: int = 0  # batches done in it
    epoch_rng: Any = None  # the batch Random's state when the epoch started (or will start)
    tokens: int = 0  # targets trained on, over the run
    train_seconds: float = 0.0  # wall time of the training steps, over the run
    best: Best = field(default_factory=Best)
    history: list[EpochRecord] = field(default_factory=list)


class Budget:
    """The wall-clock budget (``budget_minutes``, 0 = none), counted from construction.

    ``agree`` turns this process's figure into the one all training processes use (their maximum),
    so that they anneal and stop together; one process uses its own."""

    def __init__(self, minutes: float, agree: Callable[[float], float] = float) -> None:
        self.seconds = minutes * 60
        self.start = time.perf_counter()
        self.agree = agree

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def fraction(self) -> float:
        """The spent fraction of the budget (0 without one), agreed over the processes."""
        return self.agree(self.elapsed() / self.seconds) if self.seconds else 0.0

    def spent(self) -> bool:
        return bool(self.seconds) and self.fraction() >= 1.0

    def resume(self, spent: float) -> None:
        """Count ``spent`` seconds of an earlier run as already gone."""
        self.start = time.perf_counter() - spent
