"""The evaluate stage scores val and test by the convention, mixes with the n-gram on val, evaluates
dynamically, fits an ensemble on val, writes samples."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqlm.data.corpus import load_split
from seqlm.data.vocab import load_vocab
from seqlm.perplexity import load_target_logprobs, save_target_logprobs
from tiny_pipeline import write_tiny_pipeline

NGRAM_SAMPLES = "- greedy: **time traveller** and the time\n"


@pytest.fixture
def trained(tmp_path: Path, tiny_text: str) -> dict[str, Path]:
    """A tiny pipeline after the train stage, with an n-gram stand-in's outputs in data/ngram."""
    from stages import train as train_stage

    paths = write_tiny_pipeline(tmp_path, tiny_text)
    paths["checkpoint"] = tmp_path / "data" / "model" / "model.pt"
    paths["ngram"] = tmp_path / "data" / "ngram"
    metrics = tmp_path / "metrics" / "train.json"
    argv = options(**data_options(paths), metrics=metrics, live_dir=tmp_path / "dvclive")
    assert train_stage.main(argv) == 0
    vocab = load_vocab(paths["vocab"])
    rng = np.random.default_rng(0)
    for split in ("val", "test"):  # an n-gram stand-in: a random proper distribution per target
        ids = load_split(paths["corpus"], paths["tokens"], split, "char").ids
        probs = rng.dirichlet(np.ones(len(vocab)), size=ids.size)
        save_target_logprobs(paths["ngram"], split, np.log(probs[np.arange(ids.size), ids]))
    (paths["ngram"] / "samples.txt").write_text(NGRAM_SAMPLES)
    return paths


def options(**values: object) -> list[str]:
    """A stage's command line: ``--name value`` for each keyword (``_`` in a name becomes ``-``)."""
    return [
        arg for name, value in values.items() for arg in (f"--{name.replace('_', '-')}", str(value))
    ]


def data_options(paths: dict[str, Path]) -> dict[str, Path]:
    """The options the train and evaluate stages share: params, data and the checkpoint."""
    return {
        "params": paths["params"],
        "vocab": paths["vocab"],
        "corpus_dir": paths["corpus"],
        "tokens_dir": paths["tokens"],
        "checkpoint": paths["checkpoint"],
    }


def evaluate_argv(paths: dict[str, Path], tmp_path: Path, *extra: str) -> list[str]:
    out = tmp_path / "metrics"
    return [
        *options(
            **data_options(paths),
            ngram_dir=paths["ngram"],
            metrics=out / "eval.json",
            samples=out / "samples.md",
            bpc_table=out / "bits_per_char.csv",
            embeddings=out / "embeddings.csv",
        ),
        *extra,
    ]


def test_the_evaluate_stage_reports_val_test_and_the_interpolation(trained, tmp_path: Path) -> None:
    from stages import evaluate

    assert (
        evaluate.main(evaluate_argv(trained, tmp_path, "--logprobs-dir", str(tmp_path / "lp"))) == 0
    )
    metrics = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert set(metrics) == {
        "model",
        "val",
        "test",
        "parameters",
        "tokens_per_second",
        "interpolation",
        "dynamic",
        "ensemble",
    }
    record_keys = {"tokens", "nll", "perplexity", "bits_per_char", "oov", "characters"}
    record_keys |= {"bits_per_byte", "bytes", "word_perplexity", "words"}
    for split in ("val", "test"):
        assert set(metrics[split]) == record_keys
        assert set(metrics["interpolation"][split]) == record_keys
        assert set(metrics["dynamic"][split]) == record_keys
        assert set(metrics["ensemble"][split]) == record_keys
        n = load_split(trained["corpus"], trained["tokens"], split, "char").ids.size
        assert (
            metrics[split]["tokens"] == n == np.load(tmp_path / "lp" / f"{split}_logprobs.npy").size
        )
    train = json.loads((tmp_path / "metrics" / "train.json").read_text())
    assert metrics["val"]["perplexity"] == pytest.approx(train["best_val_perplexity"], rel=1e-12)
    lam = metrics["interpolation"]["lambda"]
    assert 0.0 <= lam <= 1.0
    ngram_val = np.load(trained["ngram"] / "val_logprobs.npy")
    ngram_ppl = math.exp(-ngram_val.mean())
    assert (
        metrics["interpolation"]["val"]["perplexity"]
        <= min(metrics["val"]["perplexity"], ngram_ppl) + 1e-9
    )
    table = (tmp_path / "metrics" / "bits_per_char.csv").read_text().splitlines()
    assert table[0] == (
        "system,val_bits_per_char,test_bits_per_char,val_bits_per_byte,test_bits_per_byte"
    )
    systems = {row.split(",")[0]: float(row.split(",")[2]) for row in table[1:]}
    per_byte = {row.split(",")[0]: float(row.split(",")[4]) for row in table[1:]}
    model = metrics["model"]
    assert list(systems) == [model, "ngram", f"{model}+ngram", f"{model}-dynamic", "ensemble"]
    assert systems[model] == pytest.approx(metrics["test"]["bits_per_char"], abs=1e-6)
    assert systems[f"{model}+ngram"] == pytest.approx(
        metrics["interpolation"]["test"]["bits_per_char"], abs=1e-6
    )
    assert per_byte["ensemble"] == pytest.approx(
        metrics["ensemble"]["test"]["bits_per_byte"], abs=1e-6
    )


def test_the_samples_file_holds_neural_and_ngram_samples(trained, tmp_path: Path) -> None:
    from stages import evaluate

    assert evaluate.main(evaluate_argv(trained, tmp_path)) == 0
    text = (tmp_path / "metrics" / "samples.md").read_text()
    assert "## Neural model (lstm)" in text
    assert text.count("**the time**") == 2 and "greedy" in text and "sampled" in text
    assert NGRAM_SAMPLES.strip() in text
    assert evaluate.main(evaluate_argv(trained, tmp_path)) == 0
    assert (
        tmp_path / "metrics" / "samples.md"
    ).read_text() == text  # seeded: the same samples again


def test_the_embedding_map_has_one_labelled_point_per_token_and_is_deterministic(
    trained, tmp_path: Path
) -> None:
    from stages import evaluate

    assert evaluate.main(evaluate_argv(trained, tmp_path)) == 0
    path = tmp_path / "metrics" / "embeddings.csv"
    first = path.read_text(encoding="utf-8")
    table = pd.read_csv(path, keep_default_na=False)
    vocab = load_vocab(trained["vocab"])
    assert table.columns.tolist() == ["token", "x", "y"]
    assert table["token"].tolist() == [t.replace(" ", "␣") for t in vocab.tokens]
    assert table[["x", "y"]].abs().to_numpy().max() > 0  # the points are spread, not all at 0
    assert evaluate.main(evaluate_argv(trained, tmp_path)) == 0
    assert path.read_text(encoding="utf-8") == first


def test_evaluate_refuses_a_checkpoint_trained_with_other_params(
    trained, tmp_path: Path, capsys
) -> None:
    import yaml

    from stages import evaluate

    params = yaml.safe_load(trained["params"].read_text())
    params["net"]["hidden_size"] = 32
    trained["params"].write_text(yaml.safe_dump(params))
    assert evaluate.main(evaluate_argv(trained, tmp_path)) == 1
    assert "hidden_size (checkpoint 16, params 32)" in capsys.readouterr().err
    assert not (tmp_path / "metrics" / "eval.json").exists()


def test_an_extra_member_is_evaluated_dynamically_too_and_joins_as_two_members(
    trained, tmp_path: Path
) -> None:
    import shutil

    from stages import evaluate

    extra = tmp_path / "models" / "extra"
    extra.mkdir(parents=True)
    shutil.copy(trained["checkpoint"], extra / "twin.pt")
    set_evaluate(trained, dynamic=True, members=["twin"])
    manifest = tmp_path / "data" / "ensemble.json"
    argv = evaluate_argv(
        trained, tmp_path, "--members-dir", str(extra), "--ensemble", str(manifest)
    )
    assert evaluate.main(argv) == 0
    metrics = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    weights = metrics["ensemble"]["members"]
    assert set(weights) == {"ngram", "lstm", "lstm-dynamic", "extra-twin", "extra-twin-dynamic"}
    # the same model twice: its own lr and decay, chosen on val, are the main model's
    twin = metrics["members_dynamic"]["twin"]
    assert {k: twin[k] for k in ("lr", "decay", "segment", "update")} == {
        k: metrics["dynamic"][k] for k in ("lr", "decay", "segment", "update")
    }
    assert twin["val"]["nll"] == pytest.approx(metrics["dynamic"]["val"]["nll"], rel=1e-9)
    assert weights["lstm-dynamic"] == pytest.approx(weights["extra-twin-dynamic"], abs=1e-6)
    entries = {m["name"]: m for m in json.loads(manifest.read_text())["members"]}
    assert entries["extra-twin-dynamic"]["dynamic"] == entries["lstm-dynamic"]["dynamic"]
    assert entries["extra-twin-dynamic"]["path"] == entries["extra-twin"]["path"]


def test_evaluate_refuses_ngram_scores_of_other_targets(trained, tmp_path: Path, capsys) -> None:
    from stages import evaluate

    save_target_logprobs(trained["ngram"], "test", np.full(3, -1.0))
    assert evaluate.main(evaluate_argv(trained, tmp_path)) == 1
    assert "the n-gram scored 3 test targets" in capsys.readouterr().err


def set_evaluate(paths: dict[str, Path], **values: object) -> None:
    import yaml

    params = yaml.safe_load(paths["params"].read_text())
    params["evaluate"].update(values)
    paths["params"].write_text(yaml.safe_dump(params))


def test_dynamic_evaluation_and_the_ensemble_are_reported_beside_the_static_scores(
    trained, tmp_path: Path
) -> None:
    from stages import evaluate

    assert evaluate.main(evaluate_argv(trained, tmp_path)) == 0
    metrics = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    dyn, ens = metrics["dynamic"], metrics["ensemble"]
    assert (dyn["lr"], dyn["decay"]) in [(lr, d) for lr in (0.1, 1.0) for d in (0.0, 0.01)]
    assert dyn["segment"] == 8 and dyn["seconds"] > 0 and dyn["update"] == "sgd"
    assert dyn["test"]["tokens"] == metrics["test"]["tokens"]
    assert dyn["val"]["perplexity"] != metrics["val"]["perplexity"]  # it adapted
    weights = ens["members"]
    assert set(weights) == {"ngram", "lstm", "lstm-dynamic"}
    assert sum(weights.values()) == pytest.approx(1.0)
    ngram_val = math.exp(-np.load(trained["ngram"] / "val_logprobs.npy").mean())
    members_val = [metrics["val"]["perplexity"], dyn["val"]["perplexity"], ngram_val]
    assert ens["val"]["perplexity"] <= min(members_val) + 1e-9
    assert ens["val"]["perplexity"] <= metrics["interpolation"]["val"]["perplexity"] + 1e-9
    set_evaluate(trained, dynamic=False)
    assert evaluate.main(evaluate_argv(trained, tmp_path)) == 0
    metrics = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert "dynamic" not in metrics and set(metrics["ensemble"]["members"]) == {"ngram", "lstm"}


def test_extra_members_join_the_ensemble_and_must_share_the_vocabulary(
    trained, tmp_path: Path, capsys
) -> None:
    import shutil

    from stages import evaluate

    extra = tmp_path / "models" / "extra"
    extra.mkdir(parents=True)
    shutil.copy(trained["checkpoint"], extra / "twin.pt")
    set_evaluate(trained, dynamic=False, members=["twin"])
    argv = evaluate_argv(trained, tmp_path, "--members-dir", str(extra))
    assert evaluate.main(argv) == 0
    metrics = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    weights = metrics["ensemble"]["members"]
    assert set(weights) == {"ngram", "lstm", "extra-twin"}
    assert weights["lstm"] == pytest.approx(weights["extra-twin"])  # the same model twice
    assert sum(weights.values()) == pytest.approx(1.0)
    assert "members_dynamic" not in metrics

    set_evaluate(trained, members=["missing"])
    assert evaluate.main(argv) == 1
    assert "does not exist" in capsys.readouterr().err
    from seqlm.data.vocab import Vocab
    from seqlm.neural.checkpoint import load_checkpoint, save_checkpoint

    vocab = load_vocab(trained["vocab"])
    model, info = load_checkpoint(trained["checkpoint"], vocab)
    foreign = Vocab(tokens=(*vocab.tokens[:-1], "zzz"), counts=vocab.counts)  # same size
    save_checkpoint(
        extra / "foreign.pt",
        model,
        model_name=info.model,
        net=info.net,
        vocab=foreign,
        epoch=1,
        best_val_perplexity=1.0,
    )
    set_evaluate(trained, members=["twin", "foreign"])
    assert evaluate.main(argv) == 1
    assert "foreign.pt' was trained with another vocabulary" in capsys.readouterr().err
    assert not (tmp_path / "metrics" / "eval.json").exists()


def test_the_ngram_stage_dynamic_model_joins_the_ensemble_and_loads_as_it_was_scored(
    trained, tmp_path: Path
) -> None:
    from seqlm.lm import load
    from seqlm.ngram import count_stream, fit_ngram
    from seqlm.ngram.dynamic import NgramAdaptation, dynamic_dir, dynamic_logprobs
    from seqlm.ngram.store import save_ngram
    from seqlm.sampling import text_reading
    from stages import evaluate

    vocab = load_vocab(trained["vocab"])
    splits = {
        s: load_split(trained["corpus"], trained["tokens"], s, "char").ids
        for s in ("train", "val", "test")
    }
    model = fit_ngram(count_stream(splits["train"], len(vocab), 3, vocab.id_of("<bos>")), 3)
    adapt, folder = NgramAdaptation(segment=8, refits=5), dynamic_dir(trained["ngram"])
    text = text_reading(load(trained["checkpoint"]).fmt)  # the neural member's reading
    save_ngram(model, vocab, text, trained["ngram"] / "model.npz")  # a real static member too
    for s in ("val", "test"):
        save_target_logprobs(trained["ngram"], s, model.target_logprobs(splits[s]))
    save_ngram(model, vocab, text, folder / "model.npz", {"segment": 8, "refits": 5})
    for s in ("val", "test"):
        save_target_logprobs(folder, s, dynamic_logprobs(model, splits[s], adapt))
    manifest = tmp_path / "data" / "ensemble.json"
    assert evaluate.main(evaluate_argv(trained, tmp_path, "--ensemble", str(manifest))) == 0
    metrics = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert set(metrics["ensemble"]["members"]) == {"ngram", "lstm", "ngram-dynamic", "lstm-dynamic"}
    bits = pd.read_csv(tmp_path / "metrics" / "bits_per_char.csv", index_col="system")
    want = -load_target_logprobs(folder, "test").mean() / math.log(2)
    assert bits.loc["ngram-dynamic", "test_bits_per_char"] == pytest.approx(want, rel=1e-6)
    entries = {m["name"]: m for m in json.loads(manifest.read_text())["members"]}
    assert entries["ngram-dynamic"]["dynamic"] == {"segment": 8, "refits": 5}
    ensemble = load(manifest)
    got = -ensemble.target_logprobs(splits["val"]).sum()
    assert got == pytest.approx(metrics["ensemble"]["val"]["nll"], rel=1e-12)
