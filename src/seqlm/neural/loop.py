"""The training loop: minibatches of the train split, validated by the convention after each epoch.

Every model (:class:`seqlm.neural.models.NeuralLM`) cuts its own training batches and gives the
loss of one batch from the state the previous batch left (truncated BPTT for the recurrent LMs,
independent window pairs for seq2seq); the loop only steps the optimizer
(:class:`seqlm.neural.optim.Updater`) and keeps time. Every model starts with its output bias at the
train split's unigram log-frequencies (not with ``net.init_range`` > 0: that recipe draws it too).

After every epoch the model (or its weight average) scores the val split under the convention
(:func:`seqlm.neural.evaluation.score`); the best epoch's weights are the checkpoint; training stops
after ``epochs``, after ``patience`` epochs without improvement, or when the wall-clock budget is
spent.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, cast

import torch

from seqlm.core.errors import DataError, ParamError
from seqlm.core.logs import progress_disabled
from seqlm.core.threads import limit_threads
from seqlm.data.corpus import SplitData
from seqlm.data.vocab import Vocab
from seqlm.neural.checkpoint import save_checkpoint
from seqlm.neural.evaluation import score
from seqlm.neural.models import Batch, NetParams, NeuralLM, build_model, count_parameters
from seqlm.neural.optim import Updater
from seqlm.params import TrainParams
from seqlm.perplexity import SplitScore

log = logging.getLogger(__name__)

StepHook = Callable[[int, torch.nn.Module], bool | None]


@dataclass(frozen=True)
class EpochRecord:
    """One epoch's figures (logged to DVCLive by the stage)."""

    epoch: int
    train_perplexity: float  # exp of the mean training loss over the epoch (dropout on)
    val_perplexity: float
    val_bits_per_char: float
    lr: float  # of the epoch's last step
    tokens_per_second: float  # training tokens / training seconds (validation excluded)
    train_seconds: float  # wall time of the epoch's training steps
    seconds: float  # wall time of the epoch, validation included
    improved: bool


@dataclass
class TrainResult:
    """What ``metrics/train.json`` reports."""

    model: str
    parameters: int
    best_epoch: int
    best_val_perplexity: float
    best_val_bits_per_char: float
    epochs: int
    stopped: str  # "epochs", "patience", "budget" or "callback"
    train_seconds: float
    tokens_per_second: float
    device: str
    history: list[EpochRecord] = field(default_factory=list)

    def to_metrics(self) -> dict[str, object]:
        """The JSON record (history excluded: DVCLive has the curves)."""
        out = asdict(self)
        out.pop("history")
        return out


@dataclass
class EpochSteps:
    """What one epoch's training steps gave."""

    loss_sum: float = 0.0  # mean batch loss × targets, summed
    tokens: int = 0  # targets trained on
    lr: float = 0.0  # of the last step
    train_seconds: float = 0.0  # wall time of the steps, the step hook's excluded
    stop_requested: bool = False  # by the step hook
    out_of_time: bool = False  # the budget ran out before the last epoch ended

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss_sum / max(self.tokens, 1))

    @staticmethod
    def tokens_per_second(epochs: list[EpochSteps]) -> float:
        """Training tokens per training second over ``epochs``."""
        return sum(e.tokens for e in epochs) / max(sum(e.train_seconds for e in epochs), 1e-9)

    def record(self, epoch: int, val: SplitScore, improved: bool, started: float) -> EpochRecord:
        """The epoch's record, given its val score and when it started (``perf_counter``)."""
        return EpochRecord(
            epoch=epoch,
            train_perplexity=self.perplexity,
            val_perplexity=val.perplexity,
            val_bits_per_char=val.bits_per_char,
            lr=self.lr,
            tokens_per_second=self.tokens / max(self.train_seconds, 1e-9),
            train_seconds=self.train_seconds,
            seconds=time.perf_counter() - started,
            improved=improved,
        )


@dataclass(frozen=True)
class Best:
    """The best val epoch so far (0: none yet); its weights are the checkpoint."""

    val_perplexity: float = math.inf
    val_bits_per_char: float = math.inf
    epoch: int = 0


class Budget:
    """The wall-clock budget (``budget_minutes``, 0 = none), counted from construction."""

    def __init__(self, minutes: float) -> None:
        self.seconds = minutes * 60
        self.start = time.perf_counter()

    def fraction(self) -> float:
        """The spent fraction of the budget (0 without one)."""
        return (time.perf_counter() - self.start) / self.seconds if self.seconds else 0.0

    def spent(self) -> bool:
        return bool(self.seconds) and time.perf_counter() - self.start >= self.seconds


def resolve_device(name: str) -> torch.device:
    """``auto`` → ``cuda`` when available, else ``cpu``; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamError("train.device = 'cuda' but torch sees no GPU here; use 'auto' or 'cpu'")
    return torch.device(name)  # any other name was refused by TrainParams


def seed_everything(seed: int, threads: int) -> None:
    """Seed torch's generators and make the kernels deterministic."""
    torch.manual_seed(seed)
    limit_threads(threads)  # train.threads, else SEQLM_THREADS / OMP_NUM_THREADS, else the default
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def batches_per_epoch(model: NeuralLM, split: SplitData, params: TrainParams) -> int:
    """How many batches an epoch has at most; a split too short for one is a DataError."""
    per_epoch = model.batches_per_epoch(split.ids.size, params)
    if per_epoch < 1:
        raise DataError(
            f"the train split ({split.ids.size} tokens) is too short for one batch of "
            f"{params.batch_size} {model.batch_unit(params)}; lower train.batch_size or the window"
        )
    return per_epoch


def train(
    model_name: str,
    net: NetParams,
    params: TrainParams,
    vocab: Vocab,
    train_split: SplitData,
    val_split: SplitData,
    *,
    checkpoint_path: str | os.PathLike[str],
    on_epoch: Callable[[EpochRecord], bool | None] | None = None,
    on_step: StepHook | None = None,
) -> TrainResult:
    """Train ``model_name`` on the train split; the best val epoch is saved at ``checkpoint_path``.

    ``on_epoch`` is called with each epoch's record; returning True stops training there.
    ``on_step`` is called after every optimizer step with the step count and the model (a benchmark
    can validate more often than once an epoch); returning True stops training after that step.
    """
    model, device = fresh_model(model_name, net, params, vocab, train_split)
    bos_id = vocab.id_of("<bos>")
    rng = random.Random(params.seed)
    per_epoch = batches_per_epoch(model, train_split, params)
    _log_start(model_name, model, device, params, train_split.ids.size, per_epoch)
    budget = Budget(params.budget_minutes)
    updater = Updater(model, params, per_epoch * params.epochs, budget.fraction)
    evaluated = cast(NeuralLM, updater.evaluated)  # the weight average, if there is one
    save = partial(save_checkpoint, checkpoint_path, model_name=model_name, net=net, vocab=vocab)
    best = Best()
    history: list[EpochRecord] = []
    trained: list[EpochSteps] = []
    stopped = "epochs"
    for epoch in range(1, params.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        batches = model.training_batches(train_split.ids, bos_id, params, rng)
        bar = _progress(per_epoch, epoch)
        steps = train_epoch(model, batches, updater, bar, on_step, budget, epoch < params.epochs)
        trained.append(steps)
        val, _ = score(evaluated, val_split, bos_id)
        improved = val.perplexity < best.val_perplexity
        if improved:
            best = Best(val.perplexity, val.bits_per_char, epoch)
            save(evaluated, epoch=epoch, best_val_perplexity=val.perplexity)
        updater.schedule.end_epoch(val.perplexity)
        history.append(steps.record(epoch, val, improved, epoch_start))
        _log_epoch(history[-1])
        stopped = stop_reason(history[-1], steps, on_epoch, params.patience, best.epoch)
        if stopped != "epochs":
            break
    return TrainResult(
        model=model_name,
        parameters=count_parameters(model),
        best_epoch=best.epoch,
        best_val_perplexity=best.val_perplexity,
        best_val_bits_per_char=best.val_bits_per_char,
        epochs=len(history),
        stopped=stopped,
        train_seconds=time.perf_counter() - budget.start,
        tokens_per_second=EpochSteps.tokens_per_second(trained),
        device=str(device),
        history=history,
    )


def fresh_model(
    model_name: str, net: NetParams, params: TrainParams, vocab: Vocab, train_split: SplitData
) -> tuple[NeuralLM, torch.device]:
    """The seeded, initialised model on its device (its output bias at the train unigrams)."""
    seed_everything(params.seed, params.threads)
    device = resolve_device(params.device)
    model = build_model(model_name, net, len(vocab), vocab.id_of("<bos>"))
    model.init_output_bias(train_split.ids)
    return model.to(device), device


def stop_reason(
    record: EpochRecord,
    steps: EpochSteps,
    on_epoch: Callable[[EpochRecord], bool | None] | None,
    patience: int,
    best_epoch: int,
) -> str:
    """Why training stops after this epoch: ``callback``, ``budget`` or ``patience``, else
    ``epochs`` (it goes on, or ends with its last epoch). ``on_epoch`` is called here."""
    if (on_epoch is not None and on_epoch(record)) or steps.stop_requested:
        return "callback"
    if steps.out_of_time:
        return "budget"
    if patience and record.epoch - best_epoch >= patience:
        return "patience"
    return "epochs"


def train_epoch(
    model: NeuralLM,
    batches: Iterable[Batch],
    updater: Updater,
    bar: Any,
    on_step: StepHook | None,
    budget: Budget,
    may_run_out: bool,
) -> EpochSteps:
    """Train on one epoch's ``batches`` (the state carried from batch to batch as the model says).

    Stops early when ``on_step`` returns True or, if ``may_run_out`` (not in the last epoch),
    when the ``budget`` is spent.
    """
    start = time.perf_counter()
    out = EpochSteps(lr=updater.schedule.lr)
    hook_seconds = 0.0  # time spent in on_step, not training
    state = None
    for batch in batches:
        loss, targets, state = model.batch_loss(batch, state)
        out.lr = updater.update(loss)
        out.loss_sum += loss.item() * targets
        out.tokens += targets
        if bar is not None:
            bar.update(1)
            bar.set_postfix(
                tok_s=f"{out.tokens / max(time.perf_counter() - start, 1e-9):,.0f}",
                ppl=f"{out.perplexity:.3f}",
                refresh=False,
            )
        if on_step is not None:
            hook_start = time.perf_counter()
            out.stop_requested = bool(on_step(updater.steps, model))
            hook_seconds += time.perf_counter() - hook_start
            if out.stop_requested:
                break
        if may_run_out and budget.spent():
            out.out_of_time = True  # stop here; this partial epoch is still validated
            break
    if bar is not None:
        bar.close()
    out.train_seconds = time.perf_counter() - start - hook_seconds
    return out


def _log_start(
    name: str, model: NeuralLM, device: torch.device, params: TrainParams, tokens: int, batches: int
) -> None:
    log.info(
        "training %s (%s parameters) on %s: %d train tokens, %d batches of %d %s per epoch, "
        "up to %d epochs",
        name,
        f"{count_parameters(model):,}",
        device,
        tokens,
        batches,
        params.batch_size,
        model.batch_unit(params),
        params.epochs,
    )


def _log_epoch(record: EpochRecord) -> None:
    log.info(
        "epoch %d: train ppl %.3f, val ppl %.4f (%.4f bits/char)%s, lr %.2e, %.0f tokens/s, %.1fs",
        record.epoch,
        record.train_perplexity,
        record.val_perplexity,
        record.val_bits_per_char,
        " *" if record.improved else "",
        record.lr,
        record.tokens_per_second,
        record.seconds,
    )


def _progress(total: int, epoch: int) -> Any:
    """A tqdm bar for one epoch, or None when progress bars are off."""
    if progress_disabled():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"epoch {epoch}", unit="batch", leave=False, mininterval=1.0)
