"""The training loop: minibatches of the train split, validated by the convention as it goes.

Every model (:class:`seqlm.neural.models.NeuralLM`) cuts its own training batches and gives the
loss of one batch from the state the previous batch left (truncated BPTT for the recurrent LMs,
independent window pairs for seq2seq); the loop only steps the optimizer
(:class:`seqlm.neural.optim.Updater`) and keeps time. Every model starts with its output bias at the
train split's unigram log-frequencies (not with ``net.init_range`` > 0: that recipe draws it too).

At every evaluation point — every epoch's end, or with ``eval_every`` every that many optimizer
steps (``eval_minutes``: minutes) and the last step — the model (or its weight average) scores
the val split under the convention (:func:`seqlm.neural.evaluation.score`); the best
evaluation's weights are the checkpoint. Training stops after ``epochs``, after ``max_steps``
optimizer steps, after ``patience`` evaluations without improvement, or when the wall-clock
budget is spent. At every evaluation that does not end training a resumable state is saved
(:mod:`seqlm.neural.resume`), so a killed run continues from there and ends as an uninterrupted one would::

    epoch 1                     epoch 2                     (eval_every = 4, 6 batches an epoch)
    b b b b | b b  ·  b b | b b b b | ...    | = evaluation (+ state saved), · = epoch end
            step 4       step 8    step 12

The set-up (device, processes, threads, precision) is decided once (:func:`resolve_setup`), what
the next step depends on is one :class:`TrainState`, and :func:`train_loop` is the loop.

Several processes (``torchrun``, :mod:`seqlm.neural.distributed`) each train on their rows of the
global batch; only rank 0 validates, saves the checkpoint and writes the resumable state (each
rank's carried state and generators gathered into it). ``train.precision`` picks the training
arithmetic (:mod:`seqlm.neural.precision`); validation is always float32 on the training device.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from seqlm.core.logs import progress_disabled
from seqlm.data.corpus import SplitData
from seqlm.data.vocab import Vocab
from seqlm.neural.checkpoint import save_checkpoint
from seqlm.neural.distributed import Setup, resolve_setup
from seqlm.neural.evaluation import score
from seqlm.neural.models import Batch, NeuralLM, build_model, count_parameters
from seqlm.neural.optim import Updater, total_steps
from seqlm.neural.precision import seed_everything
from seqlm.neural.records import (
    Best,
    Budget,
    Evaluation,
    Interval,
    Progress,
    TrainResult,
    TrainState,
)
from seqlm.neural.resume import Resume, restore, resumed_state, snapshot
from seqlm.params import NetParams, TrainParams

__all__ = ["Evaluation", "TrainResult", "train"]

log = logging.getLogger(__name__)

StepHook = Callable[[int, torch.nn.Module], bool | None]
EvaluationHook = Callable[[Evaluation], bool | None]


@dataclass(frozen=True)
class Run:
    """What the loop reads besides the state: the params, the set-up, the data, the checkpoint
    writer (``save(model, epoch=..., best_val_perplexity=...)``)."""

    params: TrainParams
    setup: Setup
    train_split: SplitData
    val_split: SplitData
    bos_id: int
    per_epoch: int  # batches an epoch has at most
    checkpoint: Path
    save: Callable[..., None]


def train(
    model_name: str,
    net: NetParams,
    params: TrainParams,
    vocab: Vocab,
    train_split: SplitData,
    val_split: SplitData,
    *,
    checkpoint_path: str | os.PathLike[str],
    on_evaluation: EvaluationHook | None = None,
    on_step: StepHook | None = None,
    resume: Resume | None = None,
) -> TrainResult:
    """Train ``model_name`` on the train split; the best val evaluation is saved at
    ``checkpoint_path``.

    ``on_evaluation`` is called with each evaluation's figures; returning True stops training
    there. ``on_step`` is called after every optimizer step with the step count and the model (a
    benchmark can validate more often than the loop does); returning True stops training after
    that step. With ``resume``, training continues from ``resume.saved`` if there is one, and the
    resumable state is saved through ``resume`` at every evaluation that does not end training.
    Under several processes every rank passes its ``resume`` (or None on all); rank 0's decides
    and is saved.
    """
    setup = resolve_setup(params)
    state, per_epoch = start(model_name, net, params, vocab, train_split, setup)
    checkpoint = Path(checkpoint_path)
    save = partial(save_checkpoint, checkpoint, model_name=model_name, net=net, vocab=vocab)
    bos_id = vocab.id_of("<bos>")
    run = Run(params, setup, train_split, val_split, bos_id, per_epoch, checkpoint, save)
    saved = resumed_state(setup.world, resume)
    if saved is not None:
        restore(state, saved, checkpoint)
    try:
        stopped = train_loop(run, state, setup.world.agreed(on_step), on_evaluation, resume)
    finally:
        setup.threads.release()  # this run's share of the cores, if it had one
    return result(model_name, state, stopped)


def train_loop(
    run: Run,
    state: TrainState,
    on_step: StepHook | None,
    on_evaluation: EvaluationHook | None,
    resume: Resume | None,
) -> str:
    """Train batch after batch until training stops; returns why (:func:`stop_reason`).

    After each step: the step hook, then whether an evaluation is due (:func:`evaluation_due`).
    At an epoch's end: the step decay and the next epoch (its batches drawn afresh); without
    ``eval_every`` an evaluation. At an evaluation: validate, keep the best, decide (rank 0)
    whether to stop, and if not save the resumable state.
    """
    params, world = run.params, run.setup.world
    interval, batches = Interval(epoch=state.progress.epoch, lr=state.updater.schedule.lr), None
    state.model.train()
    while True:
        if batches is None:
            batches = EpochBatches(run, state)
        batch = next(batches, None)
        if batch is None:  # the epoch's batches are done
            batches.close()
            batches = None
            state.end_epoch()
            if params.evaluates_within_epochs and state.progress.epoch <= params.epochs:
                continue  # evaluations every eval_every steps or eval_minutes, across epochs
            if params.evaluates_within_epochs and not interval.batches_trained:
                close_interval(run, state, interval)
                return "epochs"  # the last epoch ended right after an evaluation
            why = "epoch"
        else:
            train_step(run, state, batch, interval)
            run.setup.threads.refresh()  # a share of the cores follows the runs beside this one
            batches.show(interval)
            stop_requested = step_hook(on_step, state, interval)
            why = evaluation_due(params, state, interval, stop_requested)
            if why is None:
                continue
        record = evaluate(run, state, close_interval(run, state, interval))
        stopped = world.from_main(partial(stop_reason, params, state, record, why, on_evaluation))
        if stopped is not None:
            return stopped
        if resume is not None and (payload := snapshot(world, state, run.checkpoint)):
            resume.save(payload)
        interval = Interval(epoch=state.progress.epoch, lr=state.updater.schedule.lr)
        state.model.train()


def start(
    model_name: str,
    net: NetParams,
    params: TrainParams,
    vocab: Vocab,
    train_split: SplitData,
    setup: Setup,
) -> tuple[TrainState, int]:
    """A fresh, seeded run's state and the batches an epoch has: the model (initialised on the
    set-up's device, rank 0's weights adopted by every rank), its updater (the schedule's horizon
    from ``max_steps`` or the epochs), the batch generator and the budget's clock."""
    seed_everything(params.seed)
    model = build_model(model_name, net, len(vocab), vocab.id_of("<bos>"))
    model.init_output_bias(train_split.ids)
    model = model.to(setup.device)
    setup.world.adopt(model, params.seed)
    per_epoch = model.checked_batches_per_epoch(train_split.ids.size, params)
    _log_start(model_name, model, setup, params, train_split.ids.size, per_epoch)
    budget = Budget(params.budget_minutes, setup.world.reduce_max)
    horizon = total_steps(per_epoch, params)
    scaler, sync = setup.precision.scaler, setup.world.gradient_sync()
    updater = Updater(model, params, horizon, budget.fraction, scaler, sync)
    rng = random.Random(params.seed)
    return TrainState(model, updater, rng, budget, Progress(epoch_rng=rng.getstate())), per_epoch


class EpochBatches:
    """The current epoch's batches, this rank's rows of each, with rank 0's progress bar.

    Made at the epoch's start, or on resuming in the middle of it: the batch Random is put back at
    the epoch's start and the batches already done are drawn again and skipped."""

    def __init__(self, run: Run, state: TrainState) -> None:
        p, world = state.progress, run.setup.world
        state.rng.setstate(p.epoch_rng)  # where it is already, unless resuming
        drawn = state.model.training_batches(run.train_split.ids, run.bos_id, run.params, state.rng)
        self.batches: Iterator[Batch] = iter(world.shard(drawn))
        for _ in range(p.position):
            next(self.batches)
        self.bar = _progress(run.per_epoch, p.epoch, p.position) if world.is_main else None

    def __next__(self) -> Batch:
        return next(self.batches)

    def show(self, interval: Interval) -> None:
        """One more batch done, with the interval's speed and training perplexity."""
        if self.bar is None:
            return
        self.bar.update(1)
        speed = interval.tokens / max(time.perf_counter() - interval.started, 1e-9)
        self.bar.set_postfix(tok_s=f"{speed:,.0f}", ppl=f"{interval.perplexity:.3f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train_step(run: Run, state: TrainState, batch: Batch, interval: Interval) -> None:
    """One optimizer step on ``batch`` (the forward pass under the precision's autocast, from the
    state the previous batch left), counted in ``interval``."""
    with run.setup.precision.autocast():
        loss, targets, state.carried = state.model.batch_loss(batch, state.carried)
    before = state.updater.steps
    interval.lr = state.updater.update(loss, targets)
    interval.stepped = state.updater.steps > before  # not when fp16's scaler skipped the step
    interval.loss_sum += loss.item() * targets
    interval.tokens += targets
    interval.batches_trained += 1
    interval.epoch = state.progress.epoch
    state.progress.position += 1


def step_hook(on_step: StepHook | None, state: TrainState, interval: Interval) -> bool:
    """Call the step hook (its time is not training time); whether it asks to stop."""
    if on_step is None:
        return False
    started = time.perf_counter()
    stop = bool(on_step(state.updater.steps, state.model))
    interval.hook_seconds += time.perf_counter() - started
    return stop


def evaluation_due(
    params: TrainParams, state: TrainState, interval: Interval, stop_requested: bool
) -> str | None:
    """After a step: why to validate now — ``callback`` (the step hook asked to stop),
    ``max_steps``, ``budget`` (spent before the last epoch: this partial epoch is still validated,
    and training stops), ``eval_every`` or ``eval_minutes`` (the next multiple of them reached) —
    or None. The reasons that stop come first: an evaluation due on the budget's last step is that
    step's one evaluation, not one more step and one more evaluation."""
    if stop_requested:
        return "callback"
    steps = state.updater.steps
    if params.max_steps and steps >= params.max_steps:
        return "max_steps"
    if state.progress.epoch < params.epochs and state.budget.spent():
        return "budget"
    if params.eval_every and interval.stepped and steps % params.eval_every == 0:
        return "eval_every"
    due = params.eval_minutes * (len(state.progress.history) + 1)
    if params.eval_minutes and interval.stepped and state.budget.reached(due):
        return "eval_minutes"
    return None


def close_interval(run: Run, state: TrainState, interval: Interval) -> Interval:
    """Close the interval's accounts (the run's totals too): its training seconds, the loss and
    the targets summed over the training processes."""
    interval.train_seconds = time.perf_counter() - interval.started - interval.hook_seconds
    interval.loss_sum, tokens = run.setup.world.total(interval.loss_sum, interval.tokens)
    interval.tokens = int(tokens)
    state.progress.tokens += interval.tokens
    state.progress.train_seconds += interval.train_seconds
    return interval


def evaluate(run: Run, state: TrainState, interval: Interval) -> Evaluation:
    """Validate under the convention (rank 0; the score sent to every rank); keep the checkpoint
    if it is the best so far; the plateau schedule counts it. Its figures, added to the history."""
    p, world, updater = state.progress, run.setup.world, state.updater
    val = world.from_main(lambda: score(state.evaluated, run.val_split, run.bos_id)[0])
    improved = val.perplexity < p.best.val_perplexity
    if improved:
        evaluation = len(p.history) + 1
        p.best = Best(val.perplexity, val.bits_per_char, interval.epoch, updater.steps, evaluation)
        if world.is_main:
            run.save(state.evaluated, epoch=interval.epoch, best_val_perplexity=val.perplexity)
    updater.schedule.after_eval(val.perplexity)
    p.history.append(interval.record(val, improved, updater.steps, state.budget.elapsed()))
    _log_evaluation(p.history[-1])
    return p.history[-1]


def stop_reason(
    params: TrainParams,
    state: TrainState,
    record: Evaluation,
    why: str,
    on_evaluation: EvaluationHook | None,
) -> str | None:
    """Why training stops after this evaluation (made for ``why``: :func:`evaluation_due`'s
    reason or ``epoch``): ``callback`` (``on_evaluation``, called here, or the step hook asked),
    ``budget``, ``patience`` (that many evaluations without a better one), ``max_steps`` or
    ``epochs`` (all done); None: it goes on."""
    p = state.progress
    if (on_evaluation is not None and on_evaluation(record)) or why == "callback":
        return "callback"
    if why == "budget":
        return "budget"
    if params.patience and len(p.history) - p.best.evaluation >= params.patience:
        return "patience"
    if why == "max_steps":
        return "max_steps"
    if p.epoch > params.epochs:
        return "epochs"
    return None


def result(model_name: str, state: TrainState, stopped: str) -> TrainResult:
    """The run's summary (``metrics/train.json``) and its evaluations."""
    p = state.progress
    return TrainResult(
        model=model_name,
        parameters=count_parameters(state.model),
        best_epoch=p.best.epoch,
        best_val_perplexity=p.best.val_perplexity,
        best_val_bits_per_char=p.best.val_bits_per_char,
        epochs=p.history[-1].epoch if p.history else 0,
        stopped=stopped,
        train_seconds=state.budget.elapsed(),
        tokens_per_second=p.tokens / max(p.train_seconds, 1e-9),
        device=str(state.model.device),
        steps=state.updater.steps,
        best_step=p.best.step,
        history=p.history,
    )


def _log_start(
    name: str, model: NeuralLM, setup: Setup, params: TrainParams, tokens: int, batches: int
) -> None:
    log.info(
        "training %s (%s parameters) on %s: %d train tokens, %d batches of %d %s per epoch, "
        "up to %d epochs",
        name,
        f"{count_parameters(model):,}",
        setup.device,
        tokens,
        batches,
        params.batch_size,
        model.batch_unit(params),
        params.epochs,
    )


def _log_evaluation(record: Evaluation) -> None:
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
