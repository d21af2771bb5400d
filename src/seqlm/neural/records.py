"""What training records and keeps between steps: each evaluation's figures, the run's result,
the training between two evaluations, the best evaluation, where the run is, the time budget, and
the training state as a whole (:class:`TrainState`, whose ``state_dict()`` a resumable state saves).

:mod:`seqlm.neural.loop` fills them in; :mod:`seqlm.neural.resume` writes and reads
:meth:`TrainState.state_dict` as plain values and tensors.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from seqlm.neural.tensors import moved
from seqlm.perplexity import SplitScore

if TYPE_CHECKING:
    from seqlm.neural.models import NeuralLM
    from seqlm.neural.optim import Updater

TIMINGS = ("tokens_per_second", "train_seconds", "seconds", "elapsed")
"""The fields of :class:`Evaluation` (and :class:`TrainResult`) that are wall-clock measurements:
two runs of the same params on the same machine agree on every other field, not on these."""


@dataclass(frozen=True)
class Evaluation:
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
    history: list[Evaluation] = field(default_factory=list)

    def to_metrics(self) -> dict[str, object]:
        """The JSON record (history excluded: DVCLive has the curves)."""
        out = asdict(self)
        out.pop("history")
        return out


@dataclass
class Interval:
    """What the training between two evaluations gave (an epoch, unless ``eval_every``)."""

    epoch: int = 1  # of the last step
    loss_sum: float = 0.0  # mean batch loss × targets, summed
    tokens: int = 0  # targets trained on
    batches_trained: int = 0  # batches trained on, a step fp16's scaler skipped included
    lr: float = 0.0  # of the last step
    started: float = field(default_factory=time.perf_counter)
    hook_seconds: float = 0.0  # wall time spent in the step hook, not training
    train_seconds: float = 0.0  # wall time of the steps, the step hook's excluded
    stepped: bool = False  # the last batch made an optimizer step (fp16's scaler may skip one)

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss_sum / max(self.tokens, 1))

    def record(
        self, val: SplitScore, improved: bool, step: int, elapsed: float = 0.0
    ) -> Evaluation:
        """The evaluation's figures, given its val score, the optimizer steps so far and the wall
        seconds since training started."""
        return Evaluation(
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
    history: list[Evaluation] = field(default_factory=list)


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

    def reached(self, minutes: float) -> bool:
        """Whether ``minutes`` have passed since the start, agreed over the processes."""
        return self.agree(self.elapsed()) >= minutes * 60

    def resume(self, spent: float) -> None:
        """Count ``spent`` seconds of an earlier run as already gone."""
        self.start = time.perf_counter() - spent


# --- the training state --------------------------------------------------------------------------


def rng_states() -> dict[str, Any]:
    """The global generators' states: torch's CPU one, numpy's, and CUDA's when in use."""
    name, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    return {
        "torch": torch.get_rng_state(),
        "numpy": (str(name), [int(k) for k in key], int(pos), int(has_gauss), float(gauss)),
        "cuda": torch.cuda.get_rng_state_all() if cuda else None,
    }


def set_rng_states(states: dict[str, Any]) -> None:
    """Put the global generators back in :func:`rng_states`'s states."""
    torch.set_rng_state(states["torch"])
    name, key, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, gauss))
    if states["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


@dataclass
class TrainState:
    """Everything the next step depends on: the weights, the updater, the batch Random, the
    budget's clock, where the run is and the recurrent state its last batch left.

    :meth:`state_dict` is this process's view as plain values and CPU tensors (``"rank"``: its
    own generators and carried state, which differ between training processes);
    :meth:`load_state_dict` continues from one.
    """

    model: NeuralLM
    updater: Updater
    rng: random.Random  # draws the batches
    budget: Budget
    progress: Progress
    carried: Any = None  # the recurrent state the last batch left (None at an epoch's start)

    @property
    def evaluated(self) -> NeuralLM:
        """The model validated and saved: the weight average, if there is one."""
        return cast("NeuralLM", self.updater.evaluated)

    def end_epoch(self) -> None:
        """The epoch's batches are done: the step decay, and the next epoch from the zero state."""
        self.updater.schedule.after_epoch()
        self.progress.epoch += 1
        self.progress.position = 0
        self.progress.epoch_rng = self.rng.getstate()
        self.carried = None

    def rank_state_dict(self) -> dict[str, Any]:
        """This process's own part: the global generators and the carried state (on the CPU)."""
        return {"rng": rng_states(), "carried": moved(self.carried, "cpu")}

    def state_dict(self) -> dict[str, Any]:
        """What every process shares (tensors on the CPU), with this process's own part as
        ``"rank"`` (:meth:`rank_state_dict`)."""
        p = self.progress
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "updater": self.updater.state_dict(),
            "rng": {"python": p.epoch_rng},
            "progress": {
                "epoch": p.epoch,
                "position": p.position,
                "steps": self.updater.steps,
                "tokens": p.tokens,
                "train_seconds": p.train_seconds,
                "elapsed": self.budget.elapsed(),
            },
            "best": asdict(p.best),
            "history": [asdict(r) for r in p.history],
            "rank": self.rank_state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s state (a state built from the same params)."""
        self.model.load_state_dict(state["model"])
        self.updater.load_state_dict(state["updater"])
        set_rng_states(state["rank"]["rng"])
        done = state["progress"]
        self.progress = Progress(
            epoch=done["epoch"],
            position=done["position"],
            epoch_rng=state["rng"]["python"],
            tokens=done["tokens"],
            train_seconds=done["train_seconds"],
            best=Best(**state["best"]),
            history=[Evaluation(**r) for r in state["history"]],
        )
        self.rng.setstate(state["rng"]["python"])
        self.carried = moved(state["rank"]["carried"], self.model.device)
        self.budget.resume(done["elapsed"])
