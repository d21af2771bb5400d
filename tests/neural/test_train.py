"""Training: seeded and deterministic, keeps the best val epoch, stops on patience or budget."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from seqlm.core.atomic import save_npy
from seqlm.neural.checkpoint import load_checkpoint
from seqlm.data.clean import CleanParams, clean_text
from seqlm.data.corpus import encode_split, ids_path, tokens_path
from seqlm.core.errors import DataError, ParamError
from seqlm.neural.models import NetParams
from seqlm.neural.evaluation import score
from seqlm.data.split import split_by_line
from seqlm.data.tokens import stream, tokenize_lines, write_token_file
from seqlm.neural.training import TrainParams, lr_factor, resolve_device, train
from seqlm.data.vocab import VocabParams, build_vocab, save_vocab

TINY_NET = NetParams(embedding_size=8, hidden_size=16, output_dropout=0.1, window=8)
TINY_TRAIN = TrainParams(batch_size=4, num_steps=8, epochs=2, lr=0.01, warmup_steps=2)


def tiny_splits(text: str):
    """The pipeline's data for ``text`` in memory: vocab and the three char-level splits."""
    lines = clean_text(text.encode(), CleanParams())
    blocks = split_by_line(lines, 0.8, 0.1, 0.1)
    token_lines = {name: tokenize_lines(block, "char") for name, block in blocks.items()}
    vocab = build_vocab(stream(token_lines["train"], "char"), VocabParams())
    splits = {name: encode_split(name, tl, "char", vocab) for name, tl in token_lines.items()}
    return vocab, splits, token_lines


def write_tiny_pipeline(tmp_path: Path, text: str, **sections) -> dict[str, Path]:
    """The files the data stages would leave, plus a params.yaml with tiny model settings."""
    vocab, splits, token_lines = tiny_splits(text)
    paths = {"vocab": tmp_path / "data" / "vocab.tsv", "corpus": tmp_path / "data" / "corpus",
             "tokens": tmp_path / "data" / "tokens", "params": tmp_path / "params.yaml"}
    save_vocab(vocab, paths["vocab"])
    for name, split in splits.items():
        save_npy(ids_path(paths["corpus"], name), split.ids)
        write_token_file(tokens_path(paths["tokens"], name), token_lines[name])
    params = {
        "model": "lstm",
        "tokenize": {"token": "char", "train_fraction": 0.8, "val_fraction": 0.1, "test_fraction": 0.1},
        "net": {"embedding_size": 8, "hidden_size": 16, "window": 8},
        "train": {"batch_size": 4, "num_steps": 8, "epochs": 2, "lr": 0.01},
        "generate": {"prefixes": ["the time", ""], "length": 20, "seed": 0},
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            params.setdefault(key, {}).update(value)
        else:
            params[key] = value
    paths["params"].write_text(yaml.safe_dump(params))
    return paths


def run(tmp_path: Path, text: str, model: str = "lstm", net: NetParams = TINY_NET,
        params: TrainParams = TINY_TRAIN, **kw):
    vocab, splits, _ = tiny_splits(text)
    ckpt = tmp_path / f"{model}.pt"
    result = train(model, net, params, vocab, splits["train"], splits["val"], checkpoint_path=ckpt, **kw)
    return result, ckpt, vocab, splits


def without_timings(result) -> list[dict]:
    return [{k: v for k, v in vars(r).items() if k not in ("tokens_per_second", "seconds", "train_seconds")}
            for r in result.history]


def test_training_twice_with_the_same_params_gives_the_same_metrics_and_weights(tmp_path, tiny_text) -> None:
    a, ckpt_a, vocab, _ = run(tmp_path / "a", tiny_text)
    b, ckpt_b, _, _ = run(tmp_path / "b", tiny_text)
    assert without_timings(a) == without_timings(b)
    assert a.best_val_perplexity == b.best_val_perplexity
    wa, wb = (torch.load(p, weights_only=True)["state_dict"] for p in (ckpt_a, ckpt_b))
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
    c, _, _, _ = run(tmp_path / "c", tiny_text, params=TrainParams(**{**vars(TINY_TRAIN), "seed": 1}))
    assert without_timings(c) != without_timings(a)


def test_the_checkpoint_holds_the_best_val_epoch_and_scores_what_training_reported(tmp_path, tiny_text) -> None:
    result, ckpt, vocab, splits = run(tmp_path, tiny_text, params=TrainParams(
        batch_size=4, num_steps=8, epochs=3, lr=0.01))
    best = min(result.history, key=lambda r: r.val_perplexity)
    assert (result.best_epoch, result.best_val_perplexity) == (best.epoch, best.val_perplexity)
    model, info = load_checkpoint(ckpt, vocab, model_name="lstm", net=TINY_NET)
    assert info.epoch == result.best_epoch
    val, _ = score(model, splits["val"], vocab.id_of("<bos>"))
    assert val.perplexity == pytest.approx(result.best_val_perplexity, rel=1e-12)
    assert result.history[-1].val_perplexity < len(vocab)  # it learned something
    metrics = result.to_metrics()
    assert {"best_val_perplexity", "best_epoch", "epochs", "train_seconds", "tokens_per_second",
            "parameters", "stopped"} <= set(metrics)
    json.dumps(metrics)


@pytest.mark.parametrize("model", ["rnn", "gru", "seq2seq"])
def test_every_model_trains(tmp_path, tiny_text, model: str) -> None:
    result, _, _, _ = run(tmp_path, tiny_text, model=model)
    assert result.epochs == 2 and math.isfinite(result.best_val_perplexity)


@pytest.mark.parametrize(
    "changes",
    [{"sampling": "random"}, {"optimizer": "sgd", "lr": 1.0, "momentum": 0.5, "clip": 0.0},
     {"optimizer": "adam", "schedule": "plateau"}, {"schedule": "constant", "average": 0.9}],
)
def test_the_training_options_run(tmp_path, tiny_text, changes) -> None:
    params = TrainParams(**{**vars(TINY_TRAIN), **changes})
    net = NetParams(8, 16, embedding_dropout=0.1, input_dropout=0.1, weight_drop=0.2, locked=False)
    result, _, _, _ = run(tmp_path, tiny_text, net=net, params=params)
    assert result.epochs == 2 and math.isfinite(result.best_val_perplexity)


def test_training_stops_after_patience_epochs_without_improvement(tmp_path, tiny_text, monkeypatch) -> None:
    import seqlm.neural.evaluation

    monkeypatch.setattr(seqlm.neural.evaluation, "target_logprobs", lambda model, ids, bos: np.full(ids.size, -1.0))
    params = TrainParams(**{**vars(TINY_TRAIN), "epochs": 10, "patience": 2})
    result, _, _, _ = run(tmp_path, tiny_text, params=params)
    assert (result.epochs, result.best_epoch, result.stopped) == (3, 1, "patience")


def test_training_stops_when_the_time_budget_is_spent(tmp_path, tiny_text) -> None:
    params = TrainParams(**{**vars(TINY_TRAIN), "epochs": 50, "budget_minutes": 1e-6})
    result, ckpt, _, _ = run(tmp_path, tiny_text, params=params)
    assert (result.epochs, result.stopped) == (1, "budget")
    assert ckpt.is_file()


def test_each_epoch_is_reported(tmp_path, tiny_text) -> None:
    seen = []
    result, _, _, _ = run(tmp_path, tiny_text, on_epoch=seen.append)
    assert [r.epoch for r in seen] == [1, 2] and seen == result.history
    assert seen[0].lr > seen[1].lr >= 0  # cosine to min_lr = 0
    assert all(r.tokens_per_second > 0 and r.train_perplexity > 1 for r in seen)


def test_the_epoch_callback_can_stop_training(tmp_path, tiny_text) -> None:
    params = TrainParams(**{**vars(TINY_TRAIN), "epochs": 5})
    result, _, _, _ = run(tmp_path, tiny_text, params=params, on_epoch=lambda record: record.epoch == 2)
    assert (result.epochs, result.stopped) == (2, "callback")


def test_the_step_callback_sees_every_step_and_can_stop_training(tmp_path, tiny_text) -> None:
    steps = []

    def on_step(step: int, model) -> bool:
        steps.append(step)
        assert model.training
        return step == 5

    result, _, _, _ = run(tmp_path, tiny_text, on_step=on_step)
    assert steps == [1, 2, 3, 4, 5] and (result.epochs, result.stopped) == (1, "callback")


def test_a_batch_larger_than_the_train_split_is_a_clear_error(tmp_path, tiny_text) -> None:
    params = TrainParams(batch_size=512, num_steps=64)
    with pytest.raises(DataError, match="too short for one batch"):
        run(tmp_path, tiny_text, params=params)


def test_an_untrained_model_starts_from_the_unigram_distribution() -> None:
    from seqlm.neural.models import build_model
    from seqlm.neural.training import init_output_bias

    ids = np.array([2, 2, 2, 3, 3, 4] * 10)
    model = build_model("lstm", NetParams(8, 16), 6, 1)
    init_output_bias(model, ids)
    probs = torch.softmax(model.head.bias, 0).detach().numpy()
    expected = (np.bincount(ids, minlength=6) + 1) / (ids.size + 6)
    np.testing.assert_allclose(probs, expected, rtol=1e-5)


def test_the_learning_rate_warms_up_then_follows_a_cosine_to_min_lr() -> None:
    p = TrainParams(lr=1.0, warmup_steps=4, schedule="cosine", min_lr=0.1)
    factors = [lr_factor(s, 14, p) for s in range(15)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == pytest.approx(1.0) and factors[14] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))
    assert lr_factor(100, 14, TrainParams(schedule="constant")) == 1.0


def test_the_cosine_follows_the_time_budget_when_time_runs_ahead_of_the_steps() -> None:
    p = TrainParams(lr=1.0, schedule="cosine", warmup_steps=0, budget_minutes=1.0)
    assert lr_factor(0, 100, p, time_fraction=0.5) == pytest.approx(0.5)  # half the time: half the cosine
    assert lr_factor(50, 100, p, time_fraction=0.1) == pytest.approx(0.5)  # steps ahead: steps rule
    assert lr_factor(10, 100, p, time_fraction=1.0) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"optimizer": "rmsprop"}, "train.optimizer = 'rmsprop'.*sgd, adam, adamw"),
        ({"schedule": "step"}, "train.schedule = 'step'.*constant, cosine, plateau"),
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


def test_the_train_stage_writes_checkpoint_metrics_and_learning_curves(tmp_path, tiny_text, monkeypatch) -> None:
    from stages import train as train_stage

    paths = write_tiny_pipeline(tmp_path, tiny_text)
    monkeypatch.chdir(tmp_path)
    ckpt, metrics, live = tmp_path / "model" / "model.pt", tmp_path / "metrics" / "train.json", tmp_path / "dvclive"
    argv = ["--params", str(paths["params"]), "--vocab", str(paths["vocab"]), "--corpus-dir", str(paths["corpus"]),
            "--tokens-dir", str(paths["tokens"]), "--checkpoint", str(ckpt), "--metrics", str(metrics),
            "--live-dir", str(live)]
    assert train_stage.main(argv) == 0
    summary = json.loads(metrics.read_text())
    assert summary["model"] == "lstm" and summary["epochs"] == 2
    curves = live / "plots" / "metrics"
    for name in ("train/perplexity.tsv", "val/perplexity.tsv", "lr.tsv", "tokens_per_second.tsv"):
        assert len((curves / name).read_text().splitlines()) == 3, name  # header + 2 epochs
    assert not (tmp_path / "dvc.yaml").exists() and not (live / "dvc.yaml").exists()
    assert ckpt.is_file()


def test_the_train_stage_fails_cleanly_on_a_bidirectional_lm(tmp_path, tiny_text, capsys) -> None:
    from stages import train as train_stage

    paths = write_tiny_pipeline(tmp_path, tiny_text, net={"bidirectional": True})
    argv = ["--params", str(paths["params"]), "--vocab", str(paths["vocab"]), "--corpus-dir", str(paths["corpus"]),
            "--tokens-dir", str(paths["tokens"]), "--checkpoint", str(tmp_path / "m.pt"),
            "--metrics", str(tmp_path / "t.json"), "--live-dir", str(tmp_path / "live")]
    assert train_stage.main(argv) == 1
    assert "net.bidirectional = true is not allowed with model = 'lstm'" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


def test_reduce_on_plateau_cuts_the_learning_rate_after_patience_bad_epochs() -> None:
    from seqlm.neural.training import Plateau

    plateau = Plateau(TrainParams(schedule="plateau", plateau_factor=0.5, plateau_patience=2))
    scales = []
    for ppl in (5.0, 4.0, 4.5, 4.2, 4.1, 3.0, 3.5):
        plateau.update(ppl)
        scales.append(plateau.scale)
    assert scales == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]
