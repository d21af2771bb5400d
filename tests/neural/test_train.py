"""Training: seeded and deterministic, keeps the best val epoch, stops on patience or budget."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from seqlm.core.errors import DataError, ParamError
from seqlm.neural.checkpoint import load_checkpoint
from seqlm.neural.evaluation import score
from seqlm.neural.models import build_model
from seqlm.neural.precision import resolve_device
from seqlm.neural.records import TIMINGS
from seqlm.params import NetParams, TrainParams
from tiny_pipeline import (
    NO_DROPOUT,
    TINY_NET,
    TINY_TRAIN,
    tiny_data,
    train_tiny,
    write_tiny_pipeline,
)


def without_timings(result) -> list[dict]:
    return [{k: v for k, v in vars(r).items() if k not in TIMINGS} for r in result.history]


def test_training_twice_with_the_same_params_gives_the_same_metrics_and_weights(
    tmp_path, tiny_text
) -> None:
    a, ckpt_a, vocab, _ = train_tiny(tmp_path / "a", tiny_text)
    b, ckpt_b, _, _ = train_tiny(tmp_path / "b", tiny_text)
    assert without_timings(a) == without_timings(b)
    assert a.best_val_perplexity == b.best_val_perplexity
    wa, wb = (torch.load(p, weights_only=True)["state_dict"] for p in (ckpt_a, ckpt_b))
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    c, _, _, _ = train_tiny(tmp_path / "c", tiny_text, params=TINY_TRAIN.replace(seed=1))
    assert without_timings(c) != without_timings(a)


def test_the_checkpoint_holds_the_best_val_epoch_and_scores_what_training_reported(
    tmp_path, tiny_text
) -> None:
    result, ckpt, vocab, splits = train_tiny(
        tmp_path, tiny_text, params=TrainParams(batch_size=4, num_steps=8, epochs=3, lr=0.01)
    )
    best = min(result.history, key=lambda r: r.val_perplexity)
    assert (result.best_epoch, result.best_val_perplexity) == (best.epoch, best.val_perplexity)
    model, info = load_checkpoint(ckpt, vocab, model_name="lstm", net=TINY_NET)
    assert info.epoch == result.best_epoch
    val, _ = score(model, splits["val"], vocab.id_of("<bos>"))
    assert val.perplexity == pytest.approx(result.best_val_perplexity, rel=1e-12)
    assert result.history[-1].val_perplexity < len(vocab)  # it learned something
    metrics = result.to_metrics()
    assert {
        "best_val_perplexity",
        "best_epoch",
        "epochs",
        "train_seconds",
        "tokens_per_second",
        "parameters",
        "stopped",
    } <= set(metrics)
    json.dumps(metrics)


@pytest.mark.parametrize("model", ["rnn", "gru", "lstm", "seq2seq", "transformer"])
def test_every_model_learns_and_its_checkpoint_scores_what_training_reported(
    tmp_path, tiny_text, model: str
) -> None:
    result, ckpt, vocab, splits = train_tiny(
        tmp_path, tiny_text, model=model, params=TINY_TRAIN.replace(lr=0.03)
    )
    bos = vocab.id_of("<bos>")
    torch.manual_seed(0)
    untrained = build_model(model, TINY_NET, len(vocab), bos)
    untrained.init_output_bias(splits["train"].ids)
    assert result.best_val_perplexity < score(untrained, splits["val"], bos)[0].perplexity
    loaded, _ = load_checkpoint(ckpt, vocab, model_name=model, net=TINY_NET)
    assert score(loaded, splits["val"], bos)[0].perplexity == pytest.approx(
        result.best_val_perplexity, rel=1e-12
    )


def test_random_sampling_trains_every_batch_from_the_zero_state(tmp_path, tiny_text) -> None:
    data = tiny_data(tiny_text)
    model = build_model("lstm", NO_DROPOUT, len(data.vocab), 1)
    ids = data.splits["train"].ids
    first = {}
    for sampling, continues in (("sequential", True), ("random", False)):
        batches = list(
            model.training_batches(ids, 1, TINY_TRAIN.replace(sampling=sampling), random.Random(0))
        )
        assert batches and all(b.continues is continues for b in batches)
        first[sampling] = batches[0]
    _, _, state = model(torch.as_tensor(first["random"].arrays[0]))  # some non-zero state
    for sampling, uses_state in (("sequential", True), ("random", False)):
        carried, _, _ = model.batch_loss(first[sampling], state)
        fresh, _, _ = model.batch_loss(first[sampling], None)
        assert (carried.item() != fresh.item()) is uses_state, sampling
    a, _, _, _ = train_tiny(tmp_path / "a", tiny_text, params=TINY_TRAIN.replace(sampling="random"))
    b, _, _, _ = train_tiny(tmp_path / "b", tiny_text)
    assert without_timings(a) != without_timings(b)


def test_training_stops_after_patience_epochs_without_improvement(
    tmp_path, tiny_text, monkeypatch
) -> None:
    import seqlm.neural.evaluation

    monkeypatch.setattr(
        seqlm.neural.evaluation, "target_logprobs", lambda model, ids, bos: np.full(ids.size, -1.0)
    )
    params = TINY_TRAIN.replace(epochs=10, patience=2)
    result, _, _, _ = train_tiny(tmp_path, tiny_text, params=params)
    assert (result.epochs, result.best_epoch, result.stopped) == (3, 1, "patience")


def test_training_stops_when_the_time_budget_is_spent(tmp_path, tiny_text) -> None:
    params = TINY_TRAIN.replace(epochs=50, budget_minutes=1e-6)
    result, ckpt, _, _ = train_tiny(tmp_path, tiny_text, params=params)
    assert (result.epochs, result.stopped) == (1, "budget")
    assert ckpt.is_file()


def test_each_epoch_is_reported(tmp_path, tiny_text) -> None:
    seen = []
    result, _, _, _ = train_tiny(tmp_path, tiny_text, on_evaluation=seen.append)
    assert [r.epoch for r in seen] == [1, 2] and seen == result.history
    assert seen[0].lr > seen[1].lr >= 0  # cosine to min_lr = 0
    assert all(r.tokens_per_second > 0 and r.train_perplexity > 1 for r in seen)


def test_the_evaluation_callback_can_stop_training(tmp_path, tiny_text) -> None:
    params = TINY_TRAIN.replace(epochs=5)
    result, _, _, _ = train_tiny(
        tmp_path, tiny_text, params=params, on_evaluation=lambda record: record.epoch == 2
    )
    assert (result.epochs, result.stopped) == (2, "callback")


def test_the_step_callback_sees_every_step_and_can_stop_training(tmp_path, tiny_text) -> None:
    steps = []

    def on_step(step: int, model) -> bool:
        steps.append(step)
        assert model.training
        return step == 5

    result, _, _, _ = train_tiny(tmp_path, tiny_text, on_step=on_step)
    assert steps == [1, 2, 3, 4, 5] and (result.epochs, result.stopped) == (1, "callback")


def test_a_batch_larger_than_the_train_split_is_a_clear_error(tmp_path, tiny_text) -> None:
    params = TrainParams(batch_size=512, num_steps=64)
    with pytest.raises(DataError, match="too short for one batch"):
        train_tiny(tmp_path, tiny_text, params=params)


def test_an_untrained_model_starts_from_the_unigram_distribution() -> None:
    ids = np.array([2, 2, 2, 3, 3, 4] * 10)
    for name in ("lstm", "seq2seq"):
        model = build_model(name, NetParams(embedding_size=8, hidden_size=16, window=4), 6, 1)
        model.init_output_bias(ids)
        probs = torch.softmax(model.head.bias, 0).detach().numpy()
        expected = (np.bincount(ids, minlength=6) + 1) / (ids.size + 6)
        np.testing.assert_allclose(probs, expected, rtol=1e-5)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"optimizer": "rmsprop"}, "train.optimizer = 'rmsprop'.*sgd, adam, adamw"),
        ({"schedule": "exponential"}, "train.schedule = 'exponential'.*cosine, plateau, step"),
        ({"decay": 1.0}, r"train.decay = 1.0 must be in \(0, 1\)"),
        ({"decay_after": -1}, "train.decay_after = -1 must be an integer >= 0"),
        ({"sampling": "shuffle"}, "train.sampling = 'shuffle'.*sequential, random"),
        ({"device": "tpu"}, "train.device = 'tpu'.*auto, cpu, cuda"),
        ({"lr": 0.0}, "train.lr = 0.0 must be a number > 0"),
        ({"batch_size": 0}, "train.batch_size = 0 must be an integer >= 1"),
        ({"clip": -1.0}, "train.clip = -1.0"),
        ({"average": 1.0}, r"train.average = 1.0 must be in \[0, 1\)"),
    ],
)
def test_bad_train_params_are_named_with_what_is_allowed(changes, message) -> None:
    with pytest.raises(ParamError, match=message):
        TrainParams(**changes)


def test_auto_takes_the_gpu_only_when_there_is_one() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ParamError, match="no GPU"):
            resolve_device("cuda")


def train_stage_argv(paths: dict, checkpoint, metrics, live, state=None) -> list[str]:
    """The train stage's command line over a tiny pipeline's files."""
    inputs = [("--params", "params"), ("--vocab", "vocab"), ("--corpus-dir", "corpus")]
    inputs.append(("--tokens-dir", "tokens"))
    outputs = [("--checkpoint", checkpoint), ("--metrics", metrics), ("--live-dir", live)]
    outputs.append(("--state-dir", state or Path(checkpoint).parent / "train_state"))
    return [a for flag, key in inputs for a in (flag, str(paths[key]))] + [
        a for flag, path in outputs for a in (flag, str(path))
    ]


def test_the_train_stage_writes_checkpoint_metrics_and_learning_curves(
    tmp_path, tiny_text, monkeypatch
) -> None:
    from stages import train as train_stage

    paths = write_tiny_pipeline(tmp_path, tiny_text)
    monkeypatch.chdir(tmp_path)
    ckpt, metrics, live = (
        tmp_path / "model" / "model.pt",
        tmp_path / "metrics" / "train.json",
        tmp_path / "dvclive",
    )
    argv = train_stage_argv(paths, ckpt, metrics, live)
    assert train_stage.main(argv) == 0
    summary = json.loads(metrics.read_text())
    assert summary["model"] == "lstm" and summary["epochs"] == 2
    curves = live / "plots" / "metrics"
    for name in ("train/perplexity.tsv", "val/perplexity.tsv", "lr.tsv", "tokens_per_second.tsv"):
        assert len((curves / name).read_text().splitlines()) == 3, name  # header + 2 epochs
    assert not (tmp_path / "dvc.yaml").exists() and not (live / "dvc.yaml").exists()
    assert ckpt.is_file()
    assert not (tmp_path / "model" / "train_state").exists()  # removed once training completed


def test_the_train_stage_logs_the_evaluation_and_step_when_it_validates_mid_epoch(
    tmp_path, tiny_text, monkeypatch
) -> None:
    from stages import train as train_stage

    paths = write_tiny_pipeline(tmp_path, tiny_text, train={"eval_every": 20})
    monkeypatch.chdir(tmp_path)
    live = tmp_path / "dvclive"
    argv = train_stage_argv(paths, tmp_path / "m.pt", tmp_path / "t.json", live)
    assert train_stage.main(argv) == 0
    summary = json.loads((tmp_path / "t.json").read_text())
    curves = live / "plots" / "metrics"
    steps = [
        int(line.split("\t")[1]) for line in (curves / "steps.tsv").read_text().splitlines()[1:]
    ]
    assert steps == [*range(20, summary["steps"], 20), summary["steps"]]
    epochs = [line.split("\t")[1] for line in (curves / "epoch.tsv").read_text().splitlines()[1:]]
    assert epochs[0] == "1" and epochs[-1] == "2" and summary["epochs"] == 2
    val = (curves / "val" / "perplexity.tsv").read_text().splitlines()
    assert [line.split("\t")[0] for line in val[1:]] == [str(i) for i in range(len(steps))]


def test_the_train_stage_fails_cleanly_on_a_bidirectional_lm(tmp_path, tiny_text, capsys) -> None:
    from stages import train as train_stage

    paths = write_tiny_pipeline(tmp_path, tiny_text, net={"bidirectional": True})
    argv = train_stage_argv(paths, tmp_path / "m.pt", tmp_path / "t.json", tmp_path / "live")
    assert train_stage.main(argv) == 1
    assert "net.bidirectional = true is not allowed with model = 'lstm'" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


def test_a_training_with_no_thread_limit_holds_a_share_of_the_cores_while_it_trains(
    tmp_path: Path, tiny_text: str, monkeypatch
) -> None:
    import os

    for name in ("SEQLM_THREADS", "OMP_NUM_THREADS", "SEQLM_SHARE_CORES"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "cores"
    monkeypatch.setenv("SEQLM_CORES_DIR", str(folder))
    seen: list[list[str]] = []

    def on_step(step: int, model: torch.nn.Module) -> bool:
        seen.append(sorted(p.name for p in folder.iterdir()))
        return step == 3

    before = torch.get_num_threads()
    try:
        result, *_ = train_tiny(tmp_path, tiny_text, on_step=on_step)
    finally:
        torch.set_num_threads(before)
    assert result.steps == 3
    assert seen == [[str(os.getpid())]] * 3  # registered while training
    assert list(folder.iterdir()) == []  # and gone once it stopped
