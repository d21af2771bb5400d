"""The training loop: minibatches of the train split, validated by the convention as it goes.

Every model (:class:`seqlm.neural.models.NeuralLM`) cuts its own training batches and gives the
loss of one batch from the state the previous batch left (truncated BPTT for the recurrent LMs,
independent window pairs for seq2seq); the loop only steps the optimizer
(:class:`seqlm.neural.optim.Updater`) and keeps time. Every model starts with its output bias at the
train split's unigram log-frequencies (not with ``net.init_range`` > 0: that recipe draws it too).

At every evaluation point — every epoch's end, or with ``eval_every`` every that many optimizer
steps and the last step — the model (or its weight average) scores the val split under the
convention (:func:`seqlm.neural.evaluation.score`); the best evaluation's weights are the
checkpoint. Training stops after ``epochs``, after ``max_steps`` optimizer steps, after ``patience``
evaluations without improvement, or when the wall-clock budget is spent. At every evaluation that
does not end training a resumable state is saved (:mod:`seqlm.neural.resume`), so a killed run
continues from there and ends as an uninterrupted one would::

    epoch 1                     epoch 2                     (eval_every = 4, 6 batches an epoch)
    b b b b | b b  ·  b b | b b b b | ...    | = evaluation (+ state saved), · = epoch end
            step 4       step 8    step 12

Several processes (``torchrun``, :mod:`seqlm.neural.distributed`) each train on their rows of the
global batch; only rank 0 validates, saves the checkpoint and writes the resumable state (each
rank's carried state and generators gathered into it). ``train.precision`` picks the training
arithmetic (:mod:`seqlm.neural.precision`); validation is always float32 on the training device.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import torch

from seqlm.core.errors import DataError
from seqlm.core.logs import progress_disabled
from seqlm.data.corpus import SplitData
from seqlm.data.vocab import Vocab
from seqlm.neural.checkpoint import save_checkpoint
from seqlm.neural.distributed import World, join
from seqlm.neural.evaluation import score
from seqlm.neural.models import Batch, NetParams, NeuralLM, build_model, count_parameters
from seqlm.neural.optim import Updater, total_steps
from seqlm.neural.precision import Precision, resolve_device, seed_everything
from seqlm.neural.records import Best, Budget, EpochRecord, EpochSteps, Progress, TrainResult
from seqlm.neural.resume import Resume, restore, resumed_state, snapshot
from seqlm.params import TrainParams

__all__ = ["EpochRecord", "TrainResult", "resolve_device", "train"]

log = logging.getLogger(__name__)

StepHook = Callable[[int, torch.nn.Module], bool | None]


def batches_per_epoch(model: NeuralLM, split: SplitData, params: TrainParams) -> int:
    """How many batches an epoch has at most; a split too short for one is a DataError."""
    per_epoch = model.batches_per_epoch(split.ids.size, params)
    if per_epoch < 1:
        raise DataError(
            f"the train split ({split.ids.size} tokens) is too short for one batch of "
            f"{params.batch_size} {model.batch_unit(params)}; lower train.batch_size or the window"
        )
    return per_epoch


@dataclass
class Trainer:
    """One training run's parts and where it is: what :func:`train`'s helpers share."""

    model: NeuralLM
    updater: Updater
    params: TrainParams
    train_split: SplitData
    val_split: SplitData
    bos_id: int
    rng: random.Random  # draws the batches
    per_epoch: int
    budget: Budget
    save: Callable[..., None]  # the checkpoint writer
    world: World = field(default_factory=World)
    precision: Precision | None = None  # None: plain float32
    progress: Progress = field(default_factory=Progress)
    batches: Iterator[Batch] | None = None  # the current epoch's, partly consumed
    carried: Any = None  # the recurrent state the last batch left
    bar: Any = None

    @property
    def evaluated(self) -> NeuralLM:
        """The model validated and saved: the weight average, if there is one."""
        return cast(NeuralLM, self.updater.evaluated)


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
    resume: Resume | None = None,
) -> TrainResult:
    """Train ``model_name`` on the train split; the best val evaluation is saved at
    ``checkpoint_path``.

    ``on_epoch`` is called with each evaluation's record; returning True stops training there.
    ``on_step`` is called after every optimizer step with the step count and the model (a benchmark
    can validate more often than once an epoch); returning True stops training after that step.
    With ``resume``, training continues from ``resume.saved`` if there is one, and the resumable
    state is saved through ``resume`` at every evaluation that does not end training. Under several
    processes every rank passes its ``resume`` (or None on all); rank 0's decides and is saved.
    """
    t = start_training(model_name, net, params, vocab, train_split, val_split, checkpoint_path)
    saved = resumed_state(t.world, resume)
    if saved is not None:
        restore(t, saved, Path(checkpoint_path))
    on_step = t.world.agreed(on_step)
    stopped = None
    while stopped is None:
        steps = train_steps(t, on_step)
        if not steps.batches and params.eval_every:
            stopped = "epochs"  # the last epoch ended right after an evaluation
            break
        record = evaluate(t, steps)
        stopped = t.world.from_main(partial(stop_reason, t, record, steps, on_epoch))
        if stopped is None and resume is not None:
            payload = snapshot(t, Path(checkpoint_path))  # every rank's part, on rank 0
            if payload is not None:
                resume.save(payload)
    p = t.progress
    return TrainResult(
        model=model_name,
        parameters=count_parameters(t.model),
        best_epoch=p.best.epoch,
        best_val_perplexity=p.best.val_perplexity,
        best_val_bits_per_char=p.best.val_bits_per_char,
        epochs=p.history[-1].epoch if p.history else 0,
        stopped=stopped,
        train_seconds=t.budget.elapsed(),
        tokens_per_second=p.tokens / max(p.train_seconds, 1e-9),
        device=str(t.model.device),
        steps=t.updater.steps,
        best_step=p.best.step,
        history=p.history,
    )


def start_training(
    model_name: str,
    net: NetParams,
    params: TrainParams,
    vocab: Vocab,
    train_split: SplitData,
    val_split: SplitData,
    checkpoint_path: str | os.PathLike[str],
) -> Trainer:
    """A fresh, seeded run: the model, its updater (the schedule's horizon from ``max_steps`` or
    the epochs), the batch generator, the budget's clock; this process's place among the
    training processes (its group joined, rank 0's weights adopted) and the training precision."""
    world = join(resolve_device(params.device), params.batch_size)
    model, device = fresh_model(model_name, net, params, vocab, train_split)
    world.adopt(model, params.seed)
    precision = Precision(params.precision, device)
    per_epoch = batches_per_epoch(model, train_split, params)
    _log_start(model_name, model, device, params, train_split.ids.size, per_epoch)
    budget = Budget(params.budget_minutes, world.reduce_max)
    horizon = total_steps(per_epoch, params)
    sync = world.gradient_sync()
    updater = Updater(model, params, horizon, budget.fraction, precision.scaler, sync)
    save = partial(save_checkpoint, checkpoint_path, model_name=model_name, net=net, vocab=vocab)
    bos_id = vocab.id_of("<bos>")
    rng = random.Random(params.seed)
    progress = Progress(epoch_rng=rng.getstate())
    return Trainer(
        model,
        updater,
        params,
        train_split,
        val_split,
        bos_id,
        rng,
        per_epoch,
        budget,
        save,
        progress=progress,
        world=world,
        precision=precision,
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


def evaluate(t: Trainer, steps: EpochSteps) -> EpochRecord:
    """Validate under the convention; keep the checkpoint if it is the best so far; the record."""
    p = t.progress
    val = t.world.from_main(lambda: score(t.evaluated, t.val_split, t.bos_id)[0])
    improved = val.perplexity < p.best.val_perplexity
    if improved:
        step, evaluation = t.updater.steps, len(p.history) + 1
        p.best = Best(val.perplexity, val.bits_per_char, steps.epoch, step, evaluation)
        if t.world.is_main:
            t.save(t.evaluated, epoch=steps.epoch, best_val_perplexity=val.perplexity)
    t.updater.schedule.after_eval(val.perplexity)
    p.history.append(steps.record(val, improved, t.updater.steps, t.budget.elapsed()))
    _log_evaluation(p.history[-1])
    return p.history[-1]


def stop_reason(
    t: Trainer,
    record: EpochRecord,
    steps: EpochSteps,
    on_epoch: Callable[[EpochRecord], bool | None] | None,
) -> str | None:
    """Why training stops after this evaluation: ``callback``, ``budget``, ``patience`` (that
    many evaluations without a better one), ``max_steps`` or ``epochs`` (all done); None: it goes
    on. ``on_epoch`` is called here."""
    p = t.progress
    if (on_epoch is not None and on_epoch(record)) or steps.stop_requested:
        return "callback"
    if steps.out_of_time:
        return "budget"
    if t.params.patience and len(p.history) - p.best.evaluation >= t.params.patience:
        return "patience"
    if steps.at_max_steps:
        return "max_steps"
    if p.epoch > t.params.epochs:
        return "epochs"
    return None


def train_steps(t: Trainer, on_step: StepHook | None) -> EpochSteps:
    """Train from where ``t`` is to the next evaluation point: an epoch's end (``eval_every`` 0),
    a multiple of ``eval_every`` steps, the last step, or an early stop (the step hook, the
    budget). The state is carried from batch to batch as the model says.
    """
    p = t.progress
    out = EpochSteps(epoch=p.epoch, lr=t.updater.schedule.lr)
    hook_seconds = 0.0  # time spent in on_step, not training
    t.model.train()
    while p.epoch <= t.params.epochs:
        for batch in epoch_batches(t):
            hook_seconds += train_step(t, batch, out, on_step)
            if evaluation_due(t, out):
                return finish(t, out, hook_seconds)
        end_epoch(t)
        if not t.params.eval_every:
            break
    return finish(t, out, hook_seconds)


def train_step(t: Trainer, batch: Batch, out: EpochSteps, on_step: StepHook | None) -> float:
    """One optimizer step on ``batch`` (the forward pass under the precision's autocast), counted
    in ``out``; the seconds the step hook took."""
    with t.precision.autocast() if t.precision is not None else contextlib.nullcontext():
        loss, targets, t.carried = t.model.batch_loss(batch, t.carried)
    before = t.updater.steps
    out.lr = t.updater.update(loss, targets)
    out.stepped = t.updater.steps > before  # not when fp16's scaler skipped the step
    out.loss_sum += loss.item() * targets
    out.tokens += targets
    out.batches += 1
    out.epoch = t.progress.epoch
    t.progress.position += 1
    if t.bar is not None:
        t.bar.update(1)
        t.bar.set_postfix(
            tok_s=f"{out.tokens / max(time.perf_counter() - out.started, 1e-9):,.0f}",
            ppl=f"{out.perplexity:.3f}",
            refresh=False,
        )
    if on_step is None:
        return 0.0
    hook_start = time.perf_counter()
    out.stop_requested = bool(on_step(t.updater.steps, t.model))
    return time.perf_counter() - hook_start


def evaluation_due(t: Trainer, out: EpochSteps) -> bool:
    """After a step: whether to stop stepping and validate (flags in ``out`` say why)."""
    steps, params = t.updater.steps, t.params
    out.at_max_steps = bool(params.max_steps) and steps >= params.max_steps
    if out.stop_requested or out.at_max_steps:
        return True
    if params.eval_every and out.stepped and steps % params.eval_every == 0:
        return True
    # the budget stops any epoch but the last (this partial epoch is still validated)
    out.out_of_time = t.progress.epoch < params.epochs and t.budget.spent()
    return out.out_of_time


def finish(t: Trainer, out: EpochSteps, hook_seconds: float) -> EpochSteps:
    """Close the steps' accounts (run totals included): the loss and the targets summed over
    the training processes."""
    out.train_seconds = time.perf_counter() - out.started - hook_seconds
    out.loss_sum, tokens = t.world.total(out.loss_sum, out.tokens)
    out.tokens = int(tokens)
    t.progress.tokens += out.tokens
    t.progress.train_seconds += out.train_seconds
    return out


def epoch_batches(t: Trainer) -> Iterator[Batch]:
    """The current epoch's batch iterator, made at its start (or on resuming in the middle of it:
    the batch Random back at the epoch's start, the batches done drawn again and skipped)."""
    p = t.progress
    if t.batches is None:
        t.rng.setstate(p.epoch_rng)  # where it is already, unless resuming
        ids = t.train_split.ids
        batches = t.model.training_batches(ids, t.bos_id, t.params, t.rng)
        t.batches = iter(t.world.shard(batches))  # this rank's rows of each
        for _ in range(p.position):
            next(t.batches)
        t.bar = _progress(t.per_epoch, p.epoch, p.position) if t.world.is_main else None
    return t.batches


def end_epoch(t: Trainer) -> None:
    """The epoch's batches are done: the step decay, and the next epoch from the zero state."""
    if t.bar is not None:
        t.bar.close()
    t.updater.schedule.after_epoch()
    t.progress.epoch += 1
    t.progress.position = 0
    t.progress.epoch_rng = t.rng.getstate()
    t.batches = t.carried = t.bar = None


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


def _log_evaluation(record: EpochRecord) -> None:
    log.info(
        "epoch %d, step %d: train ppl %.3f, val ppl %.4f (%.4f bits/char)%s, lr %.2e, "
        "%.0f tokens/s, %.1fs",
        record.epoch,
        record.step,
        record.train_perplexity,
        record.val_perplexity,
        record.val_bits_per_char,
        " *" if record.improved else "",
        record.lr,
        record.tokens_per_second,
        record.seconds,
    )


def _progress(total: int, epoch: int, done: int) -> Any:
    """A tqdm bar for one epoch (``done`` batches in), or None when progress bars are off."""
    if progress_disabled():
        return None
    from tqdm import tqdm

    return tqdm(
        total=total, initial=done, desc=f"epoch {epoch}", unit="batch", leave=False, mininterval=1.0
    )
