"""Optimisation from the ``train`` section: the optimizer, the learning-rate schedule, the average.

The learning rate of optimizer step ``s`` (from 0) is one function of the step, :func:`rate`, with
``W = warmup_steps`` and ``base = lr`` times the cuts so far::

    rate(s) = base · max(shape(s), floor / base),   floor = min_lr under plateau, else 0
    shape(s) = (s + 1) / W                                                       for s < W
             = ½ (1 + cos π p) · (1 − f) + f,   f = min_lr / lr,                 cosine
                 p = max((s − W) / (total − W), spent fraction of the time budget) ≤ 1,
                 total = epochs × batches per epoch, or max_steps if fewer
             = 1                                                                 otherwise

The cuts are ``plateau``'s (``ReduceLROnPlateau``, stepped with every val perplexity: × factor
after plateau_patience evaluations without a better one, never below min_lr; after the warm-up it
alone holds the rate) and ``step``'s (× ``decay`` at the end of every epoch from ``decay_after``
on, so ``lr · decay^max(e − decay_after, 0)`` in epoch e = 1, 2, …; ``decay_after`` 0 starts at
``lr · decay``). A cut multiplies the rate at once, and ``base`` with it: one that comes during the
warm-up scales the rest of the ramp too. ``base`` is the product of the cuts in the order they came
(``lr · decay · decay``, not ``lr · decay²``), as the rate itself is cut. The weight average is
``torch.optim.swa_utils.AveragedModel`` with an exponential moving average that starts from the
initial weights and has a short memory at first: after ``n`` steps the old average weighs
``min(average, (1 + n) / (10 + n))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.optim.swa_utils import AveragedModel

from seqlm.params import TrainParams


def make_optimizer(model: torch.nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    """SGD, Adam or AdamW over the model's parameters."""
    if params.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=params.lr,
            momentum=params.momentum,
            weight_decay=params.weight_decay,
        )
    if params.optimizer == "adam":
        return torch.optim.Adam(
            model.parameters(),
            lr=params.lr,
            betas=(0.9, params.beta2),
            weight_decay=params.weight_decay,
        )
    # AdamW decays the matrices (weights, embeddings), not the biases
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": params.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=params.lr,
        betas=(0.9, params.beta2),
    )


def total_steps(per_epoch: int, params: TrainParams) -> int:
    """The schedule's horizon: ``epochs`` epochs of ``per_epoch`` steps, or ``max_steps`` if fewer."""
    total = per_epoch * params.epochs
    return min(total, params.max_steps) if params.max_steps else total


def cosine_factor(
    params: TrainParams, total_steps: int, time_fraction: Callable[[], float]
) -> Callable[[int], float]:
    """The cosine's multiplier of ``lr`` at step ``s`` after the warm-up.

    It follows whichever is further along, the steps or the time budget (``time_fraction()`` of
    ``budget_minutes`` spent), so a run on a slow or busy machine still anneals to ``min_lr``
    before its budget ends (and is then no longer step-for-step reproducible).
    """
    span = max(total_steps - params.warmup_steps, 1)
    floor = params.min_lr / params.lr

    def factor(s: int) -> float:
        progress = min(max(s / span, time_fraction()), 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def lr_shape(
    params: TrainParams, total_steps: int, time_fraction: Callable[[], float] = lambda: 0.0
) -> Callable[[int], float]:
    """``shape(s)``: the rate of step ``s`` over ``base`` — the linear warm-up, then the cosine
    (``schedule: cosine``) or 1."""
    warmup = params.warmup_steps
    after = (
        cosine_factor(params, total_steps, time_fraction) if params.schedule == "cosine" else None
    )

    def shape(s: int) -> float:
        if s < warmup:
            return (s + 1) / warmup
        return after(s - warmup) if after is not None else 1.0

    return shape


def rate(base: float, shape: float, floor: float = 0.0) -> float:
    """The learning rate: ``base`` (``lr`` times the cuts so far) times the schedule's ``shape``
    at the step, never below ``floor`` (``min_lr`` under ``plateau``)."""
    return base * max(shape, floor / base)


class Schedule:
    """The learning rate of every optimizer step: :func:`rate` of the step, and the cuts.

    Call :meth:`step` after every optimizer step, :meth:`after_eval` with every val perplexity and
    :meth:`after_epoch` at every epoch's end (:meth:`end_epoch` does both). ``time_fraction()`` is
    the spent fraction of the time budget (0 without one).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        params: TrainParams,
        total_steps: int,
        time_fraction: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.optimizer = optimizer
        self.shape = lr_shape(params, total_steps, time_fraction)
        self.warmup_steps = params.warmup_steps
        self.steps = 0  # optimizer steps taken
        self.epochs = 0  # epochs ended
        self.decay = params.decay if params.schedule == "step" else None
        self.decay_after = params.decay_after
        self.base = params.lr * params.decay if self.decay and not self.decay_after else params.lr
        self.plateau: ReduceLROnPlateau | None = None
        self.floor = 0.0
        if params.schedule == "plateau":
            self.floor = params.min_lr
            self.plateau = ReduceLROnPlateau(
                optimizer,
                mode="min",
                factor=params.plateau_factor,
                patience=params.plateau_patience - 1,  # torch cuts after more than `patience`
                threshold=0.0,
                min_lr=params.min_lr,
                eps=0.0,
            )
        self._set(rate(self.base, self.shape(0), self.floor))

    @property
    def lr(self) -> float:
        """The learning rate the next optimizer step uses."""
        return float(self.optimizer.param_groups[0]["lr"])

    def _set(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        """After an optimizer step: the next step's rate (under ``plateau`` only until the end of
        the warm-up; the plateau's cuts hold it after that)."""
        self.steps += 1
        if self.plateau is None or self.steps <= self.warmup_steps:
            self._set(rate(self.base, self.shape(self.steps), self.floor))

    def end_epoch(self, val_perplexity: float) -> None:
        """After an epoch ended with a validation: :meth:`after_eval`, then :meth:`after_epoch`."""
        self.after_eval(val_perplexity)
        self.after_epoch()

    def after_eval(self, val_perplexity: float) -> None:
        """After every validation: ``plateau`` counts it (its patience is in evaluations) and
        may cut the rate."""
        if self.plateau is None:
            return
        before = self.lr
        self.plateau.step(val_perplexity)  # the rate × factor, never below min_lr
        if self.lr != before:
            self.base *= self.plateau.factor

    def after_epoch(self) -> None:
        """After every epoch: ``step`` cuts the rate by ``decay`` from epoch ``decay_after`` on."""
        self.epochs += 1
        if self.decay is None or self.epochs < self.decay_after:
            return
        self._set(self.lr * self.decay)
        self.base *= self.decay

    def state_dict(self) -> dict[str, Any]:
        """The steps and epochs counted, the cuts' product and the plateau's counts (the
        optimizer's learning rates are in the optimizer's state)."""
        return {
            "steps": self.steps,
            "epochs": self.epochs,
            "base": self.base,
            "plateau": None if self.plateau is None else self.plateau.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s state (a schedule built from the same params)."""
        self.steps = int(state["steps"])
        self.epochs = int(state["epochs"])
        self.base = float(state["base"])
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])


def ema_avg_fn(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``AveragedModel``'s ``avg_fn``: the exponential moving average with a short early memory."""

    def average(averaged: torch.Tensor, current: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        steps = int(n)  # steps averaged so far, the initial weights counted as the first
        d = min(decay, (1 + steps) / (10 + steps))
        return averaged.mul(d).add_(current, alpha=1 - d)

    return average


def weight_average(model: torch.nn.Module, decay: float) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights from its current (initial) weights,
    updated with ``update_parameters(model)`` after each step; ``None`` for ``decay`` 0 (off)."""
    if not decay:
        return None
    average = AveragedModel(model, avg_fn=ema_avg_fn(decay))
    average.update_parameters(model)  # the first update copies: the average starts at the weights
    return average


class Updater:
    """One optimizer step after another: gradients, clipping, the step, the schedule, the average.

    ``steps`` counts the optimizer steps taken; ``evaluated`` is the model to validate and save:
    the weight average when there is one, else the model itself. With a ``scaler`` (fp16) the loss
    is scaled before ``backward`` and the gradients unscaled before clipping; a step whose
    gradients overflowed is skipped (counted in ``skipped``; the schedule and the average do not
    move). ``sync(model, targets)`` (several processes) averages the gradients over the processes
    right after ``backward``, before the unscaling and the clipping.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        params: TrainParams,
        total_steps: int,
        time_fraction: Callable[[], float] = lambda: 0.0,
        scaler: torch.amp.GradScaler | None = None,
        sync: Callable[[torch.nn.Module, int], None] | None = None,
    ) -> None:
        self.model = model
        self.clip = params.clip
        self.optimizer = make_optimizer(model, params)
        self.schedule = Schedule(self.optimizer, params, total_steps, time_fraction)
        self.average = weight_average(model, params.average)
        self.scaler = scaler
        self.sync = sync
        self.steps = 0
        self.skipped = 0

    @property
    def evaluated(self) -> torch.nn.Module:
        return self.model if self.average is None else self.average.module

    def update(self, loss: torch.Tensor, targets: int = 1) -> float:
        """Step on ``loss``'s gradients (``loss`` the mean over ``targets`` targets); returns the
        learning rate the step used."""
        lr = self.schedule.lr
        self.optimizer.zero_grad(set_to_none=True)
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        if self.sync is not None:
            self.sync(self.model, targets)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        if not self._step():
            self.skipped += 1
            return lr
        self.schedule.step()
        self.steps += 1
        if self.average is not None:
            self.average.update_parameters(self.model)
        return lr

    def _step(self) -> bool:
        """The optimizer step; False when the scaler skipped it (its gradients overflowed)."""
        if self.scaler is None:
            self.optimizer.step()
            return True
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return self.scaler.get_scale() >= scale  # the scale drops only after an overflow

    def state_dict(self) -> dict[str, Any]:
        """Everything the next steps depend on: optimizer, schedule, average, the gradient
        scaler (None without one), step and skipped-step counts."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "average": None if self.average is None else self.average.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "steps": self.steps,
            "skipped": self.skipped,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s state (an updater built from the same params)."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.average is not None:
            self.average.load_state_dict(state["average"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.steps = int(state["steps"])
        self.skipped = int(state.get("skipped", 0))
