"""The ngram stage as DVC runs it: outputs, their agreement, determinism, clean failure."""

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from seqlm.core.atomic import save_npy
from seqlm.data.corpus import ids_path, prepare_text, tokens_path
from seqlm.data.tokens import write_token_file
from seqlm.data.vocab import save_vocab
from seqlm.ngram import baseline, count_stream, fit_ngram, read_arpa
from seqlm.ngram.baseline import sample_texts, search_order
from seqlm.ngram.dynamic import NgramAdaptation, dynamic_dir, dynamic_logprobs, read_adaptation
from seqlm.ngram.memory import BYTES_PER_NGRAM, MemoryPlan, TablesTooLarge
from seqlm.ngram.sharded_store import ShardedKneserNey
from seqlm.ngram.store import load_ngram
from seqlm.params import GenerateParams, NgramParams, TokenizeParams
from seqlm.perplexity import load_target_logprobs, score_split
from stages import ngram

TIMING_KEYS = ("fit_seconds", "score_seconds")


def tokenize_params(token: str) -> TokenizeParams:
    return TokenizeParams(token=token, train_fraction=0.8, val_fraction=0.1, test_fraction=0.1)


def write_inputs(root: Path, text: str, token: str = "char", **ngram_params) -> list[str]:
    """Write the tokenize/vocab/corpus outputs for ``text`` and a params file; return the argv."""
    data = prepare_text(text, tokenize_params(token))
    save_vocab(data.vocab, root / "vocab.tsv")
    for split, tl in data.token_lines.items():
        write_token_file(tokens_path(root / "tokens", split), [tl], tokenize_params(token))
        save_npy(ids_path(root / "corpus", split), data.splits[split].ids)
    params = {
        "clean": {"mode": "textbook"},
        "tokenize": {
            "token": token,
            "train_fraction": 0.8,
            "val_fraction": 0.1,
            "test_fraction": 0.1,
        },
        "vocab": {"min_freq": 1, "reserved": ["<bos>"]},
        "ngram": {
            "order": "auto",
            "max_order": 4,
            "smoothing": "kneser_ney",
            "laplace_alpha": 1.0,
            **ngram_params,
        },
        "generate": {
            "prefixes": ["the time", ""],
            "length": 40,
            "temperature": 1.0,
            "top_k": 0,
            "seed": 0,
        },
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return [
        "--params",
        str(root / "params.yaml"),
        "--vocab",
        str(root / "vocab.tsv"),
        "--corpus-dir",
        str(root / "corpus"),
        "--tokens-dir",
        str(root / "tokens"),
        "--out-dir",
        str(root / "ngram"),
        "--metrics",
        str(root / "metrics" / "ngram.json"),
        "--orders",
        str(root / "metrics" / "ngram_orders.csv"),
    ]


def read_outputs(root: Path) -> tuple[dict, list[dict]]:
    metrics = json.loads((root / "metrics" / "ngram.json").read_text())
    with open(root / "metrics" / "ngram_orders.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return metrics, rows


def test_the_stage_writes_metrics_orders_logprobs_and_samples(tmp_path, tiny_text):
    argv = write_inputs(tmp_path, tiny_text * 4)
    assert ngram.main(argv) == 0
    metrics, rows = read_outputs(tmp_path)
    assert set(metrics) == {
        "order",
        "smoothing",
        "val",
        "test",
        "train",
        "ngrams",
        "fit_seconds",
        "score_seconds",
        "vocab_size",
    }
    assert metrics["smoothing"] == "kneser_ney"
    assert len(metrics["ngrams"]) == metrics["order"]
    assert metrics["ngrams"][0] == metrics["vocab_size"]
    assert metrics["vocab_size"] == len((tmp_path / "vocab.tsv").read_text().splitlines()) - 1
    assert [int(r["order"]) for r in rows] == [1, 2, 3, 4]
    best = min(rows, key=lambda r: float(r["val_perplexity"]))
    assert metrics["order"] == int(best["order"])
    assert metrics["val"]["perplexity"] == pytest.approx(float(best["val_perplexity"]), rel=1e-6)
    for split in ("val", "test"):
        lp = load_target_logprobs(tmp_path / "ngram", split)
        ids = np.load(ids_path(tmp_path / "corpus", split))
        assert lp.shape == ids.shape  # one log-probability per target, ready for mixing
        assert metrics[split]["nll"] == pytest.approx(-lp.sum())
        assert metrics[split]["tokens"] == ids.size
    assert metrics["train"]["perplexity"] < metrics["val"]["perplexity"]
    samples = (tmp_path / "ngram" / "samples.txt").read_text()
    assert "== prefix: 'the time' ==\nthe time" in samples and "== prefix: '' ==" in samples


@pytest.mark.parametrize(
    "token, messy, clean", [("char", "The  TIME!", "the time"), ("word", " the TIME, ", "the time")]
)
def test_prefixes_are_cleaned_like_the_corpus_before_sampling(tiny_text, token, messy, clean):
    data = prepare_text(tiny_text * 4, tokenize_params(token))
    counts = count_stream(data.splits["train"].ids, len(data.vocab), 3, data.vocab.id_of("<bos>"))
    model = fit_ngram(counts, 3)

    def sample(prefix: str) -> str:
        gen = GenerateParams(prefixes=(prefix,), length=30, seed=1)
        return sample_texts(model, data.vocab, token, gen)

    as_written, cleaned = sample(messy), sample(clean)
    assert f"== prefix: {messy!r} ==\n{clean}" in as_written
    assert as_written.replace(repr(messy), repr(clean)) == cleaned  # the same continuation


def test_the_stage_is_deterministic(tmp_path, tiny_text):
    argv = write_inputs(tmp_path, tiny_text * 4)
    assert ngram.main(argv) == 0
    first = read_outputs(tmp_path), (tmp_path / "ngram" / "samples.txt").read_bytes()
    assert ngram.main(argv) == 0
    second = read_outputs(tmp_path), (tmp_path / "ngram" / "samples.txt").read_bytes()
    for metrics in (first[0][0], second[0][0]):
        for key in TIMING_KEYS:
            metrics.pop(key)
    assert first == second


def test_a_fixed_order_fits_only_that_order(tmp_path, tiny_text):
    argv = write_inputs(tmp_path, tiny_text * 4, order=3, smoothing="laplace")
    assert ngram.main(argv) == 0
    metrics, rows = read_outputs(tmp_path)
    assert (metrics["order"], metrics["smoothing"]) == (3, "laplace")
    assert [int(r["order"]) for r in rows] == [3]


def test_word_tokens_work_too(tmp_path, tiny_text):
    argv = write_inputs(tmp_path, tiny_text * 4, token="word", max_order=3)
    assert ngram.main(argv) == 0
    metrics, _ = read_outputs(tmp_path)
    assert metrics["val"]["characters"] > metrics["val"]["tokens"]


def test_the_arpa_option_writes_the_sentence_model_of_the_chosen_order(tmp_path, tiny_text):
    argv = write_inputs(tmp_path, tiny_text * 4)
    assert ngram.main([*argv, "--arpa", str(tmp_path / "ngram" / "model.arpa")]) == 0
    metrics, _ = read_outputs(tmp_path)
    assert read_arpa(tmp_path / "ngram" / "model.arpa").order == metrics["order"]


def test_a_pruned_stage_keeps_fewer_ngrams_and_its_saved_model_scores_as_the_stage_did(
    tmp_path, tiny_text
):
    argv = write_inputs(tmp_path / "full", tiny_text * 4, order=4)
    assert ngram.main([*argv, "--arpa", str(tmp_path / "full" / "model.arpa")]) == 0
    full, _ = read_outputs(tmp_path / "full")
    argv = write_inputs(tmp_path, tiny_text * 4, order=4, prune=[0, 4])  # the text is there 4 times
    assert ngram.main([*argv, "--arpa", str(tmp_path / "ngram" / "model.arpa")]) == 0
    metrics, _ = read_outputs(tmp_path)
    assert metrics["ngrams"][0] == full["ngrams"][0]
    assert all(p < f for p, f in zip(metrics["ngrams"][1:], full["ngrams"][1:], strict=True))
    model, _, _ = load_ngram(tmp_path / "ngram")
    val = np.load(ids_path(tmp_path / "corpus", "val"))
    saved = load_target_logprobs(tmp_path / "ngram", "val")
    assert np.array_equal(model.target_logprobs(val), saved)
    arpa, full_arpa = (read_arpa(p / "model.arpa") for p in (tmp_path / "ngram", tmp_path / "full"))
    assert [len(g) for g in arpa.grams][0] == len(full_arpa.grams[0])
    pairs = [(len(p), len(f)) for p, f in zip(arpa.grams[1:], full_arpa.grams[1:], strict=True)]
    assert all(p <= f for p, f in pairs) and pairs[-1][0] < pairs[-1][1]


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"order": 0}, "ngram.order = 0 is not allowed; use an integer >= 1 or 'auto'"),
        ({"smoothing": "katz"}, "choose one of: kneser_ney, laplace"),
        ({"max_orders": 5}, "unknown key(s) in params section 'ngram': max_orders"),
        ({"prune": [0, 2, 1]}, "ngram.prune = [0, 2, 1] must be non-decreasing"),
    ],
)
def test_bad_params_fail_with_one_message_and_leave_no_outputs(
    tmp_path, tiny_text, capsys, bad, message
):
    argv = write_inputs(tmp_path, tiny_text * 4)
    assert ngram.main(argv) == 0  # outputs of an earlier good run...
    write_inputs(tmp_path, tiny_text * 4, **bad)
    assert ngram.main(argv) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "metrics" / "ngram.json").exists()  # ...are gone, not left stale
    assert not (tmp_path / "metrics" / "ngram_orders.csv").exists()
    assert sorted(p.name for p in (tmp_path / "ngram").iterdir()) == []


def test_arpa_export_needs_kneser_ney(tmp_path, tiny_text, capsys):
    argv = write_inputs(tmp_path, tiny_text * 4, smoothing="laplace")
    assert ngram.main([*argv, "--arpa", str(tmp_path / "m.arpa")]) == 1
    assert "--arpa needs ngram.smoothing = kneser_ney" in capsys.readouterr().err
    assert not (tmp_path / "m.arpa").exists()


@pytest.mark.parametrize("smoothing, alpha", [("kneser_ney", 1.0), ("laplace", 0.25)])
def test_the_order_search_scores_each_order_on_val_and_picks_the_lowest_perplexity(
    tiny_text, smoothing, alpha
):
    data = prepare_text(tiny_text * 3, tokenize_params("char"))
    train, val, bos = data.splits["train"], data.splits["val"], data.vocab.id_of("<bos>")
    params = NgramParams(order="auto", max_order=4, smoothing=smoothing, laplace_alpha=alpha)
    order, rows = search_order(params, train, val, data.vocab)
    assert [r.order for r in rows] == [1, 2, 3, 4]
    for r in rows:  # each row: that order's model, fitted on train alone, scored on val
        model = fit_ngram(
            count_stream(train.ids, len(data.vocab), r.order, bos), r.order, smoothing, alpha
        )
        s = score_split(model.target_logprobs(val.ids), val.characters, val.oov)
        assert r.val_perplexity == pytest.approx(s.perplexity, rel=1e-12)
        assert r.val_bits_per_char == pytest.approx(s.bits_per_char, rel=1e-12)
    assert order == min(rows, key=lambda r: r.val_perplexity).order


def test_the_dynamic_model_is_saved_with_its_scores_and_gone_when_turned_off(tmp_path, tiny_text):
    argv = write_inputs(
        tmp_path, tiny_text * 4, dynamic=True, dynamic_order=5, dynamic_segment=16,
        dynamic_refits=4,
    )  # fmt: skip
    assert ngram.main(argv) == 0
    metrics, _ = read_outputs(tmp_path)
    record = metrics["dynamic"]
    assert (record["order"], record["segment"], record["refits"]) == (5, 16, 4)
    folder = dynamic_dir(tmp_path / "ngram")
    model, _, _ = load_ngram(folder)
    assert model.order == 5 and read_adaptation(folder / "model.npz") == NgramAdaptation(16, 4)
    for split in ("val", "test"):
        ids = np.load(ids_path(tmp_path / "corpus", split))
        saved = load_target_logprobs(folder, split)
        assert np.array_equal(saved, dynamic_logprobs(model, ids, NgramAdaptation(16, 4)))
        assert record[split]["nll"] == pytest.approx(-saved.sum(), rel=1e-12)
        assert record[split]["tokens"] == ids.size
    # the static model and its scores are those of a run without it
    static = load_target_logprobs(tmp_path / "ngram", "val")
    write_inputs(tmp_path, tiny_text * 4, dynamic=False)
    assert ngram.main(argv) == 0
    assert np.array_equal(load_target_logprobs(tmp_path / "ngram", "val"), static)
    assert "dynamic" not in read_outputs(tmp_path)[0]
    assert sorted(p.name for p in folder.iterdir()) == []  # no stale member for the ensemble


@dataclass(frozen=True)
class SmallTables(MemoryPlan):
    """A cap whose tables' third holds ``entries`` n-grams (tests/ngram/test_sharded.py spills
    with tiny chunks and runs)."""

    entries: int = 1_200

    @property
    def table_bytes(self) -> int:
        return BYTES_PER_NGRAM * self.entries


@pytest.mark.parametrize(
    "entries, max_order, depth, prune", [(1_200, 4, 1, []), (600, 5, 2, []), (600, 5, 2, [0, 1])]
)
def test_a_model_larger_than_its_cap_is_sharded_and_writes_what_the_whole_model_does(
    tmp_path, tiny_text, monkeypatch, entries, max_order, depth, prune
):
    whole, small = tmp_path / "whole", tmp_path / "small"
    for root in (whole, small):
        root.mkdir()
    settings = {"max_order": max_order, "prune": prune}
    assert ngram.main(write_inputs(whole, tiny_text * 4, **settings)) == 0
    argv = write_inputs(small, tiny_text * 4, **settings)
    plan = lambda params, vocab, workers: SmallTables(  # noqa: E731
        params.memory_mb, workers, params.counted_order(), entries
    )
    monkeypatch.setattr(baseline, "memory_plan", plan)
    assert ngram.main(argv) == 0
    (metrics, rows), (reference, reference_rows) = read_outputs(small), read_outputs(whole)
    sharded = metrics.pop("sharded")
    assert sharded["depth"] == depth and sharded["shards"] > 1
    assert rows == reference_rows
    for record in (metrics, reference):
        for key in TIMING_KEYS:
            record.pop(key)
    train, reference_train = metrics.pop("train"), reference.pop("train")
    assert train["nll"] == pytest.approx(reference_train["nll"], rel=1e-13)  # summed otherwise
    if prune:  # scored by a pass over train in both runs
        assert train == reference_train
    assert metrics == reference
    for name in ("val_logprobs.npy", "test_logprobs.npy", "samples.txt"):
        assert (small / "ngram" / name).read_bytes() == (whole / "ngram" / name).read_bytes()
    model, _, _ = load_ngram(small / "ngram")
    assert isinstance(model, ShardedKneserNey) and model.depth == depth
    val = np.load(ids_path(small / "corpus", "val"))
    assert np.array_equal(model.target_logprobs(val), load_target_logprobs(small / "ngram", "val"))
    assert not list((small / "ngram").glob(".seqlm-*"))  # the shards' folder is gone


@pytest.mark.parametrize("setting", [{"dynamic": True}, {"smoothing": "laplace"}])
def test_a_model_too_large_to_shard_is_refused_saying_why_and_leaves_nothing(
    tmp_path, tiny_text, monkeypatch, capsys, setting
):
    argv = write_inputs(tmp_path, tiny_text * 4, **setting)
    plan = lambda params, vocab, workers: SmallTables(  # noqa: E731
        params.memory_mb, workers, params.counted_order()
    )
    monkeypatch.setattr(baseline, "memory_plan", plan)
    assert ngram.main(argv) == 1
    err = capsys.readouterr().err
    assert "is too small for this corpus" in err and "tables must fit in memory" in err
    assert next(iter(setting)) in err
    assert sorted(p.name for p in (tmp_path / "ngram").iterdir()) == []


def test_a_sharded_model_is_not_exported_as_arpa(tmp_path, tiny_text, monkeypatch, capsys):
    argv = write_inputs(tmp_path, tiny_text * 4)
    plan = lambda params, vocab, workers: SmallTables(  # noqa: E731
        params.memory_mb, workers, params.counted_order()
    )
    monkeypatch.setattr(baseline, "memory_plan", plan)
    assert ngram.main([*argv, "--arpa", str(tmp_path / "m.arpa")]) == 1
    assert "exceed ngram.memory_mb" in capsys.readouterr().err
    assert not (tmp_path / "m.arpa").exists()
    assert sorted(p.name for p in (tmp_path / "ngram").iterdir()) == []


def test_the_library_run_shards_too_given_a_token_name_for_the_format(
    tmp_path, tiny_text, monkeypatch
):
    data = prepare_text(tiny_text * 4, tokenize_params("char"))
    params, gen = NgramParams(order="auto", max_order=4), GenerateParams(prefixes=("the",))
    whole = baseline.run_baseline(params, gen, data.vocab, data.splits, "char", 1, tmp_path / "a")
    plan = lambda params, vocab, workers: SmallTables(  # noqa: E731
        params.memory_mb, workers, params.counted_order()
    )
    monkeypatch.setattr(baseline, "memory_plan", plan)
    run = baseline.run_baseline(params, gen, data.vocab, data.splits, "char", 1, tmp_path / "b")
    assert run.sharded is not None and whole.sharded is None
    assert run.scores["test"] == whole.scores["test"] and run.samples == whole.samples
    assert load_ngram(tmp_path / "b")[2]["token"] == "char"
    with pytest.raises(TablesTooLarge, match="needs a folder for them"):
        baseline.run_baseline(params, gen, data.vocab, data.splits, "char", 1, None)
