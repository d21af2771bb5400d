"""Step- and time-based training (eval_every, eval_minutes, max_steps) and resuming a killed run
exactly where it was."""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from seqlm.neural.optim import total_steps
from seqlm.neural.records import TIMINGS
from seqlm.neural.resume import Resume, fingerprint, open_resume
from tiny_pipeline import TINY_NET, TINY_TRAIN, tiny_data, train_tiny


class Crash(Exception):
    """Stands for a kill: training stops at once, wherever it is."""


def without_timings(history) -> list[dict]:
    return [{k: v for k, v in vars(r).items() if k not in TIMINGS} for r in history]


def resume_for(folder, text, model="lstm", net=TINY_NET, params=TINY_TRAIN, processes=1) -> Resume:
    data = tiny_data(text)
    splits = data.splits["train"], data.splits["val"]
    current = fingerprint(model, net, params, data.vocab, *splits, processes)
    return open_resume(folder, current)


class LastWeights:
    """A step hook that keeps the raw weights after the last step (and crashes at ``crash_at``)."""

    def __init__(self, crash_at: int = 0) -> None:
        self.crash_at = crash_at
        self.weights: dict[str, torch.Tensor] = {}

    def __call__(self, step: int, model: torch.nn.Module) -> bool:
        if step == self.crash_at:
            raise Crash
        self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return False


CRASH_PARAMS = TINY_TRAIN.replace(eval_every=5)  # a state at step 5, the crash at step 8


def crash_after_a_saved_state(tmp_path, folder, text: str) -> None:
    """Train the tiny LSTM with ``CRASH_PARAMS`` and a resumable state in ``folder`` until it
    crashes at step 8 (the state of step 5 left behind)."""
    with pytest.raises(Crash):
        train_tiny(
            tmp_path,
            text,
            params=CRASH_PARAMS,
            on_step=LastWeights(crash_at=8),
            resume=resume_for(folder, text, params=CRASH_PARAMS),
        )


def test_the_horizon_is_max_steps_when_it_comes_before_the_last_epoch() -> None:
    assert total_steps(37, TINY_TRAIN) == 74
    assert total_steps(37, TINY_TRAIN.replace(max_steps=5)) == 5
    assert total_steps(37, TINY_TRAIN.replace(max_steps=500)) == 74


def test_max_steps_stops_mid_epoch_at_the_end_of_a_cosine_schedule_of_that_length(
    tmp_path, tiny_text
) -> None:
    params = TINY_TRAIN.replace(max_steps=5, epochs=10)
    result, ckpt, _, _ = train_tiny(tmp_path, tiny_text, params=params)
    assert (result.steps, result.stopped, result.epochs) == (5, "max_steps", 1)
    assert [r.step for r in result.history] == [5] and ckpt.is_file()
    # the last step (s = 4) is 2/3 of the way through the cosine after 2 warm-up steps
    expected = params.lr * 0.5 * (1 + math.cos(math.pi * (4 - 2) / (5 - 2)))
    assert result.history[-1].lr == pytest.approx(expected, rel=1e-12)


def test_eval_every_validates_every_that_many_steps_and_at_the_last_without_changing_the_updates(
    tmp_path, tiny_text
) -> None:
    plain_hook, every_hook = LastWeights(), LastWeights()
    plain, _, _, _ = train_tiny(tmp_path / "a", tiny_text, on_step=plain_hook)
    every, _, _, _ = train_tiny(
        tmp_path / "b", tiny_text, params=TINY_TRAIN.replace(eval_every=7), on_step=every_hook
    )
    last = every.steps
    assert last == plain.steps == plain.history[-1].step
    assert [r.step for r in every.history] == [*range(7, last, 7), last] and last % 7
    assert [r.epoch for r in every.history][0] == 1 and every.history[-1].epoch == 2
    assert (every.stopped, every.epochs) == ("epochs", 2)
    assert every.history[-1].val_perplexity == plain.history[-1].val_perplexity
    for key, value in plain_hook.weights.items():
        assert torch.equal(value, every_hook.weights[key]), key
    best = min(every.history, key=lambda r: r.val_perplexity)
    assert (every.best_step, every.best_val_perplexity) == (best.step, best.val_perplexity)


def test_eval_minutes_validates_by_the_clock_and_at_the_last_step_without_changing_the_updates(
    tmp_path, tiny_text
) -> None:
    plain_hook, timed_hook = LastWeights(), LastWeights()
    plain, _, _, _ = train_tiny(tmp_path / "a", tiny_text, on_step=plain_hook)
    minutes = 2e-4  # 12 ms: evaluations within the epochs, however fast the machine
    params = TINY_TRAIN.replace(eval_minutes=minutes)
    timed, _, _, _ = train_tiny(tmp_path / "b", tiny_text, params=params, on_step=timed_hook)
    steps = [r.step for r in timed.history]
    assert timed.steps == plain.steps and steps[-1] == timed.steps and timed.stopped == "epochs"
    assert len(steps) > len(plain.history) and steps == sorted(set(steps))
    for i, record in enumerate(timed.history[:-1]):  # never before its minute came
        assert record.elapsed >= (i + 1) * minutes * 60
    assert timed.history[-1].val_perplexity == plain.history[-1].val_perplexity
    for key, value in plain_hook.weights.items():
        assert torch.equal(value, timed_hook.weights[key]), key


@pytest.mark.parametrize(
    "spent, history, budget_minutes, why",
    [
        (179.0, 2, 0.0, None),
        (181.0, 2, 0.0, "eval_minutes"),
        (61.0, 0, 0.0, "eval_minutes"),
        (181.0, 2, 3.0, "budget"),  # the budget's last step: one evaluation, and the stop
    ],
)
def test_an_eval_minutes_evaluation_is_due_once_the_clock_passes_its_multiple(
    spent, history, budget_minutes, why
) -> None:
    from seqlm.neural.loop import evaluation_due
    from seqlm.neural.records import Budget, Interval, Progress

    budget = Budget(budget_minutes)
    budget.resume(spent)
    progress = Progress(epoch_rng=None)
    progress.history.extend([None] * history)
    state = SimpleNamespace(updater=SimpleNamespace(steps=7), progress=progress, budget=budget)
    interval = Interval(epoch=1, lr=0.1, stepped=True)
    assert evaluation_due(TINY_TRAIN.replace(eval_minutes=1.0), state, interval, False) == why


def test_patience_counts_evaluations(tmp_path, tiny_text, monkeypatch) -> None:
    import seqlm.neural.evaluation

    monkeypatch.setattr(
        seqlm.neural.evaluation, "target_logprobs", lambda model, ids, bos: np.full(ids.size, -1.0)
    )
    params = TINY_TRAIN.replace(epochs=10, patience=2, eval_every=3)
    result, _, _, _ = train_tiny(tmp_path, tiny_text, params=params)
    assert (result.stopped, result.steps, result.best_step, len(result.history)) == (
        "patience",
        9,
        3,
        3,
    )


CASES = {
    "mid-epoch, state carried": ("lstm", TINY_NET, TINY_TRAIN.replace(eval_every=10), 25),
    "at an epoch's end": ("lstm", TINY_NET, TINY_TRAIN.replace(epochs=3), 60),
    "random batches, plateau, average": (
        "gru",
        TINY_NET,
        TINY_TRAIN.replace(sampling="random", schedule="plateau", average=0.9, eval_every=8),
        30,
    ),
    "seq2seq, step decay": (
        "seq2seq",
        TINY_NET,
        TINY_TRAIN.replace(schedule="step", decay_after=1, epochs=3, eval_every=5),
        40,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_killed_run_resumed_from_its_state_ends_bit_for_bit_as_an_uninterrupted_one(
    tmp_path, tiny_text, case: str
) -> None:
    model, net, params, crash_at = CASES[case]
    kw = {"model": model, "net": net, "params": params}
    whole_hook = LastWeights()
    whole, whole_ckpt, _, _ = train_tiny(
        tmp_path / "whole",
        tiny_text,
        on_step=whole_hook,
        resume=resume_for(tmp_path / "whole-state", tiny_text, **kw),
        **kw,
    )
    assert crash_at < whole.steps
    with pytest.raises(Crash):
        train_tiny(
            tmp_path / "killed",
            tiny_text,
            on_step=LastWeights(crash_at=crash_at),
            resume=resume_for(tmp_path / "state", tiny_text, **kw),
            **kw,
        )
    resume = resume_for(tmp_path / "state", tiny_text, **kw)
    assert resume.saved is not None and 0 < resume.saved["progress"]["steps"] < crash_at
    (tmp_path / "killed" / f"{model}.pt").unlink()  # as DVC removes the outputs before a rerun
    resumed_hook = LastWeights()
    resumed, resumed_ckpt, _, _ = train_tiny(
        tmp_path / "killed", tiny_text, on_step=resumed_hook, resume=resume, **kw
    )
    assert without_timings(resumed.history) == without_timings(whole.history)
    assert (resumed.stopped, resumed.steps, resumed.best_step) == (
        whole.stopped,
        whole.steps,
        whole.best_step,
    )
    assert resumed_ckpt.read_bytes() == whole_ckpt.read_bytes()
    for key, value in whole_hook.weights.items():
        assert torch.equal(value, resumed_hook.weights[key]), key


def test_a_state_saved_under_other_params_or_data_is_never_resumed_and_is_removed(
    tmp_path, tiny_text, caplog
) -> None:
    folder = tmp_path / "state"
    crash_after_a_saved_state(tmp_path, folder, tiny_text)
    assert (folder / "state.pt").is_file()
    caplog.set_level(logging.INFO, logger="seqlm.neural.resume")
    other = resume_for(folder, tiny_text, params=CRASH_PARAMS.replace(lr=0.02))
    assert other.saved is None and not (folder / "state.pt").exists()
    assert "not resuming from" in caplog.text and "train.lr (saved 0.01, now 0.02)" in caplog.text
    assert "training from the start" in caplog.text

    crash_after_a_saved_state(tmp_path, folder, tiny_text)
    caplog.clear()
    text = tiny_text.replace("Time", "Tame")  # another vocabulary and other ids
    assert resume_for(folder, text, params=CRASH_PARAMS).saved is None
    assert "vocab_sha256" in caplog.text and "train_ids_sha256" in caplog.text


def test_a_state_saved_by_one_process_is_not_resumed_by_two(tmp_path, tiny_text, caplog) -> None:
    folder, params = tmp_path / "state", CRASH_PARAMS
    crash_after_a_saved_state(tmp_path, folder, tiny_text)
    saved = torch.load(folder / "state.pt", weights_only=True)
    assert saved["fingerprint"]["processes"] == 1 and len(saved["ranks"]) == 1
    caplog.set_level(logging.INFO, logger="seqlm.neural.resume")
    assert resume_for(folder, tiny_text, params=params, processes=2).saved is None
    assert "processes (saved 1, now 2)" in caplog.text and not (folder / "state.pt").exists()


def test_an_unreadable_state_is_reported_and_training_starts_from_the_beginning(
    tmp_path, tiny_text, caplog
) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    (folder / "state.pt").write_bytes(b"half a state")
    caplog.set_level(logging.INFO, logger="seqlm.neural.resume")
    assert resume_for(folder, tiny_text).saved is None
    assert "not a readable state" in caplog.text and not (folder / "state.pt").exists()


def test_the_state_is_saved_at_evaluations_that_do_not_end_training_and_removed_on_request(
    tmp_path, tiny_text
) -> None:
    params = TINY_TRAIN.replace(eval_every=10, max_steps=30)
    resume = resume_for(tmp_path / "state", tiny_text, params=params)
    resume.extras = lambda: {"note": "kept"}
    train_tiny(tmp_path, tiny_text, params=params, resume=resume)
    saved = torch.load(resume.path, weights_only=True)
    assert saved["progress"]["steps"] == 20  # step 30 ended training: nothing to resume there
    assert saved["extras"] == {"note": "kept"} and len(saved["history"]) == 2
    resume.remove()
    assert not (tmp_path / "state").exists()
