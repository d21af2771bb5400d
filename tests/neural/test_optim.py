"""Optimisation: the learning rate at every step, momentum and the weight average, by their effect."""

from __future__ import annotations

import math

import pytest
import torch

from seqlm.neural.models import build_model
from seqlm.neural.optim import Schedule, cosine_factor, make_optimizer
from seqlm.params import TrainParams
from tiny_pipeline import NO_DROPOUT, TINY_NET, TINY_TRAIN, tiny_data, weights_after_each_step


def test_momentum_leaves_the_first_sgd_step_alone_and_changes_the_next(tmp_path, tiny_text) -> None:
    sgd = TINY_TRAIN.replace(optimizer="sgd", lr=1.0, clip=0.0, warmup_steps=0, schedule="constant")
    plain = weights_after_each_step(tmp_path / "a", tiny_text, 2, net=NO_DROPOUT, params=sgd)
    heavy = weights_after_each_step(
        tmp_path / "b", tiny_text, 2, net=NO_DROPOUT, params=sgd.replace(momentum=0.5)
    )
    key = "rnn.weight_hh_l0"
    # the momentum buffer starts at the first gradient, then the previous step is added in
    torch.testing.assert_close(heavy[0][key], plain[0][key], rtol=0, atol=0)
    assert not torch.equal(heavy[1][key], plain[1][key])


@pytest.mark.parametrize("model", ["lstm", "seq2seq"])
def test_the_saved_weights_are_the_moving_average_of_the_raw_weights(
    tmp_path, tiny_text, model: str
) -> None:
    decay, steps = 0.9, 4
    params = TINY_TRAIN.replace(average=decay)
    raw = weights_after_each_step(tmp_path, tiny_text, steps, model=model, params=params)
    data = tiny_data(tiny_text)
    torch.manual_seed(params.seed)  # training builds its model right after seeding
    initial = build_model(model, TINY_NET, len(data.vocab), data.vocab.id_of("<bos>"))
    initial.init_output_bias(data.splits["train"].ids)
    expected = {k: v.detach().clone() for k, v in initial.state_dict().items()}
    for n, weights in enumerate(raw, start=1):  # the old average weighs min(decay, (1+n)/(10+n))
        d = min(decay, (1 + n) / (10 + n))
        expected = {k: expected[k] * d + weights[k] * (1 - d) for k in expected}
    saved = torch.load(tmp_path / f"{model}.pt", weights_only=True)["state_dict"]
    for key, value in expected.items():
        torch.testing.assert_close(saved[key], value, rtol=1e-6, atol=1e-7)
    assert not torch.equal(saved["head.weight"], raw[-1]["head.weight"])


def closed_form_lrs(
    params: TrainParams, per_epoch: int, val_perplexities: list[float]
) -> list[float]:
    """Every step's rate by the closed form: a warm-up ramp, then the cosine's or 1, times the
    plateau's scale (× factor after ``plateau_patience`` epochs without a better val perplexity),
    never below ``min_lr`` under ``plateau``, or the step decay's ``decay ** max(e − decay_after,
    0)`` in epoch ``e`` (from 1)."""
    total = per_epoch * len(val_perplexities)

    def lr_factor(step: int) -> float:
        if params.warmup_steps and step < params.warmup_steps:
            return (step + 1) / params.warmup_steps
        if params.schedule != "cosine":
            return 1.0
        progress = min((step - params.warmup_steps) / max(total - params.warmup_steps, 1), 1.0)
        floor = params.min_lr / params.lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    plateau = params.schedule == "plateau"
    scale, best, bad_epochs, lrs = 1.0, math.inf, 0, []
    for epoch, val in enumerate(val_perplexities):
        step_decay = params.decay ** max(epoch + 1 - params.decay_after, 0)
        for i in range(per_epoch):
            lr = params.lr * lr_factor(epoch * per_epoch + i) * (scale if plateau else 1.0)
            lr = lr * step_decay if params.schedule == "step" else lr
            lrs.append(max(lr, params.min_lr) if plateau else lr)
        if val < best:
            best, bad_epochs = val, 0
            continue
        bad_epochs += 1
        if bad_epochs >= params.plateau_patience:
            scale, bad_epochs = scale * params.plateau_factor, 0
    return lrs


def optimizer_lrs(
    params: TrainParams, per_epoch: int, val_perplexities: list[float]
) -> list[float]:
    """Every step's rate as the optimizer holds it (every parameter group), driven like training."""
    optimizer = make_optimizer(torch.nn.Linear(2, 2), params)
    schedule = Schedule(optimizer, params, per_epoch * len(val_perplexities))
    lrs = []
    for val in val_perplexities:
        for _ in range(per_epoch):
            (lr,) = {group["lr"] for group in optimizer.param_groups}
            lrs.append(lr)
            optimizer.step()
            schedule.step()
        schedule.end_epoch(val)
    return lrs


VALS = [5.0, 4.0, 4.5, 4.2, 4.1, 3.0, 3.5, 3.6, 3.7, 3.8]


@pytest.mark.parametrize(
    "params",
    [
        TrainParams(lr=0.3, warmup_steps=3, schedule="cosine", min_lr=0.01),
        TrainParams(lr=0.3, warmup_steps=0, schedule="cosine", optimizer="sgd"),
        TrainParams(lr=0.3, warmup_steps=4, schedule="constant", optimizer="adam"),
        TrainParams(lr=0.08, warmup_steps=3, schedule="plateau", min_lr=0.006),
        TrainParams(lr=0.08, warmup_steps=3, schedule="plateau", plateau_patience=2, min_lr=0.001),
        TrainParams(lr=1.0, warmup_steps=0, schedule="step", optimizer="sgd"),
        TrainParams(lr=0.3, warmup_steps=7, schedule="step", decay_after=1, decay=0.25),
        TrainParams(lr=0.3, warmup_steps=2, schedule="step", decay_after=0, optimizer="adam"),
    ],
    ids=[
        "cosine",
        "cosine-no-warm-up",
        "constant",
        "plateau",
        "plateau-patience-2",
        "step",
        "step-cut-during-warm-up",
        "step-from-the-first-epoch",
    ],
)
def test_the_optimizer_gets_the_closed_form_learning_rate_at_every_step(
    params: TrainParams,
) -> None:
    assert optimizer_lrs(params, 5, VALS) == closed_form_lrs(params, 5, VALS)


COS_QUARTER = 0.5 + 0.5 * math.sqrt(0.5)  # ½ (1 + cos π/4)

WRITTEN_OUT = {
    # 2 warm-up steps, then the cosine over the 4 steps left of 3 epochs × 2 batches
    "cosine": (
        TrainParams(lr=1.0, warmup_steps=2, schedule="cosine"),
        2,
        [5.0, 4.0, 3.0],
        [0.5, 1.0, 1.0, COS_QUARTER, 0.5, 1 - COS_QUARTER],
    ),
    "constant": (
        TrainParams(lr=0.5, warmup_steps=2, schedule="constant"),
        2,
        [5.0, 4.0],
        [0.25, 0.5, 0.5, 0.5],
    ),
    # a cut after 6 and after 7 (patience 1), the second stopped at min_lr = 0.3
    "plateau": (
        TrainParams(lr=1.0, warmup_steps=2, schedule="plateau", min_lr=0.3),
        2,
        [5.0, 6.0, 4.0, 7.0, 8.0],
        [0.5, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.3, 0.3],
    ),
    # cuts after 6, 7 and 8 during a 4-step warm-up: each halves the rest of the ramp too
    "plateau-cut-during-warm-up": (
        TrainParams(lr=1.0, warmup_steps=4, schedule="plateau"),
        1,
        [5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
        [0.25, 0.5, 0.375, 0.25, 0.125, 0.0625],
    ),
    # halved at the end of every epoch from epoch 2 on
    "step": (
        TrainParams(lr=1.0, warmup_steps=0, schedule="step", decay_after=2),
        2,
        [5.0, 4.0, 3.0, 2.0],
        [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25],
    ),
    # the cut after epoch 1 comes at step 2 of a 4-step warm-up
    "step-cut-during-warm-up": (
        TrainParams(lr=1.0, warmup_steps=4, schedule="step", decay_after=1),
        2,
        [5.0, 4.0, 3.0],
        [0.25, 0.5, 0.375, 0.5, 0.25, 0.25],
    ),
}


@pytest.mark.parametrize("case", list(WRITTEN_OUT))
def test_the_code_and_the_closed_form_give_the_rates_written_out_by_hand(case: str) -> None:
    params, per_epoch, vals, expected = WRITTEN_OUT[case]
    assert optimizer_lrs(params, per_epoch, vals) == pytest.approx(expected, rel=1e-15)
    assert closed_form_lrs(params, per_epoch, vals) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize(
    "params",
    [
        TrainParams(
            lr=0.1, warmup_steps=3, schedule="plateau", plateau_factor=0.3, plateau_patience=2
        ),
        TrainParams(lr=0.1, warmup_steps=12, schedule="plateau", plateau_factor=0.3, min_lr=0.02),
    ],
    ids=["factor-0.3", "cut-during-warm-up"],
)
def test_a_plateau_factor_that_is_not_a_power_of_two_agrees_to_rounding(
    params: TrainParams,
) -> None:
    # torch multiplies the rate by the factor at each cut (lr·f·f), the closed form the scale (lr·f²)
    assert optimizer_lrs(params, 3, VALS) == pytest.approx(
        closed_form_lrs(params, 3, VALS), rel=1e-15
    )


def test_the_step_schedule_follows_zaremba_small_and_a_non_power_of_two_decay_to_rounding() -> None:
    small = TrainParams(lr=1.0, warmup_steps=0, schedule="step", optimizer="sgd", clip=5.0)
    assert optimizer_lrs(small, 1, VALS[:7]) == [1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125]
    medium = small.replace(decay=1 / 1.2, decay_after=6, warmup_steps=4)  # Zaremba medium
    assert optimizer_lrs(medium, 3, VALS) == pytest.approx(
        closed_form_lrs(medium, 3, VALS), rel=1e-15
    )


def test_the_cosine_follows_the_time_budget_when_time_runs_ahead_of_the_steps() -> None:
    p = TrainParams(lr=1.0, schedule="cosine", warmup_steps=0, budget_minutes=1.0)
    assert cosine_factor(p, 100, lambda: 0.5)(0) == pytest.approx(
        0.5
    )  # half the time: half the cosine
    assert cosine_factor(p, 100, lambda: 0.1)(50) == pytest.approx(0.5)  # steps ahead: steps rule
    assert cosine_factor(p, 100, lambda: 1.0)(10) == pytest.approx(0.0)


def test_reduce_on_plateau_cuts_the_learning_rate_after_patience_bad_epochs() -> None:
    params = TrainParams(
        lr=1.0, warmup_steps=0, schedule="plateau", plateau_factor=0.5, plateau_patience=2
    )
    lrs = optimizer_lrs(params, 1, [5.0, 4.0, 4.5, 4.2, 4.1, 3.0, 3.5, 3.6])
    assert lrs == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]  # cut after 4.5 and 4.2, not after 3.5


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_adams_second_moment_decay_is_train_beta2(optimizer: str) -> None:
    model = torch.nn.Linear(3, 2)
    for beta2 in (0.999, 0.99):
        made = make_optimizer(model, TrainParams(optimizer=optimizer, beta2=beta2))
        assert {g["betas"] for g in made.param_groups} == {(0.9, beta2)}
    with pytest.raises(Exception, match=r"train.beta2 = 1.*\[0, 1\)"):
        TrainParams(beta2=1.0)
