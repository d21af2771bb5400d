"""Everything the pipeline chooses is chosen on val: replacing the test split changes no choice.

The ngram, train and evaluate stages run twice on a tiny corpus: once as it is, once with every
test line reversed (train and val untouched, so the vocabulary is the same). Each chosen quantity
(:data:`CHOICES`) must come out identical, while the test scores do change, which shows that the
stages really read the other test split. A new val-tuned option adds one entry to :data:`CHOICES`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline_support import TINY_TEXT
from seqlm.data.split import split_by_line
from tiny_pipeline import CHAR_80_10_10, tiny_data, write_tiny_pipeline

SETTINGS = {
    "ngram": {"order": "auto", "max_order": 5, "dynamic": True, "dynamic_order": 6},
    "train": {"epochs": 4, "patience": 1, "batch_size": 4, "num_steps": 8, "lr": 0.01},
}

Outputs = dict[str, Path]

# name -> how to read the choice from a run's outputs
CHOICES: dict[str, Callable[[Outputs], object]] = {
    "the n-gram order": lambda out: read_json(out["ngram"])["order"],
    "the n-gram's val score": lambda out: read_json(out["ngram"])["val"],
    "the dynamic n-gram's val score": lambda out: read_json(out["ngram"])["dynamic"]["val"],
    "the best epoch": lambda out: read_json(out["train"])["best_epoch"],
    "when training stopped, and why": lambda out: (
        read_json(out["train"])["epochs"],
        read_json(out["train"])["stopped"],
    ),
    "the checkpoint's weights": lambda out: out["checkpoint"].read_bytes(),
    "the interpolation weight": lambda out: read_json(out["eval"])["interpolation"]["lambda"],
    "the interpolation's val score": lambda out: read_json(out["eval"])["interpolation"]["val"],
    "the dynamic evaluation's lr and decay": lambda out: (
        read_json(out["eval"])["dynamic"]["lr"],
        read_json(out["eval"])["dynamic"]["decay"],
    ),
    "the dynamic evaluation's val score": lambda out: read_json(out["eval"])["dynamic"]["val"],
    "the ensemble's weights": lambda out: read_json(out["eval"])["ensemble"]["members"],
    "the ensemble's val score": lambda out: read_json(out["eval"])["ensemble"]["val"],
}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def with_test_lines_reversed(text: str) -> str:
    """``text`` with each line of the test block (the split's last 10%) written backwards."""
    lines = text.split("\n")
    blocks = split_by_line(lines, 0.8, 0.1, 0.1)
    head = blocks["train"] + blocks["val"]
    return "\n".join(head + [line[::-1] for line in blocks["test"]])


def run_stages(root: Path, text: str) -> Outputs:
    """The ngram, train and evaluate stages on ``text``'s data files, as dvc would run them."""
    from stages import evaluate, ngram, train

    paths = write_tiny_pipeline(root, text, **SETTINGS)
    data = {"--vocab": paths["vocab"], "--corpus-dir": paths["corpus"]}
    data |= {"--tokens-dir": paths["tokens"], "--params": paths["params"]}
    out = {
        "ngram": root / "metrics" / "ngram.json",
        "train": root / "metrics" / "train.json",
        "eval": root / "metrics" / "eval.json",
        "checkpoint": root / "data" / "model" / "model.pt",
    }
    ngram_dir, metrics = root / "data" / "ngram", root / "metrics"
    stage_options = {
        ngram: {"--out-dir": ngram_dir, "--metrics": out["ngram"], "--orders": metrics / "o.csv"},
        train: {
            "--checkpoint": out["checkpoint"],
            "--metrics": out["train"],
            "--live-dir": root / "dvclive",
        },
        evaluate: {
            "--checkpoint": out["checkpoint"],
            "--ngram-dir": ngram_dir,
            "--metrics": out["eval"],
            "--samples": metrics / "samples.md",
            "--bpc-table": metrics / "bpc.csv",
            "--embeddings": metrics / "embeddings.csv",
        },
    }
    for stage, options in stage_options.items():
        argv = [str(part) for pair in (data | options).items() for part in pair]
        assert stage.main(argv) == 0, stage.__name__
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Outputs, Outputs]:
    text = TINY_TEXT * 4
    other = with_test_lines_reversed(text)
    same, changed = tiny_data(text), tiny_data(other)
    assert same.vocab == changed.vocab, "the vocabulary must not see the test split"
    for split in ("train", "val"):
        assert (same.splits[split].ids == changed.splits[split].ids).all()
    assert (same.splits["test"].ids != changed.splits["test"].ids).any()
    assert CHAR_80_10_10.test_fraction == 0.1
    return (
        run_stages(tmp_path_factory.mktemp("as-is"), text),
        run_stages(tmp_path_factory.mktemp("test-reversed"), other),
    )


def test_the_stages_did_score_the_replaced_test_split(runs) -> None:
    as_is, reversed_test = runs
    for name in ("ngram", "eval"):
        assert read_json(as_is[name])["test"] != read_json(reversed_test[name])["test"], name
    for key in ("interpolation", "dynamic", "ensemble"):
        mixed = [read_json(out["eval"])[key]["test"] for out in runs]
        assert mixed[0] != mixed[1], key


@pytest.mark.parametrize("choice", sorted(CHOICES))
def test_a_val_chosen_quantity_does_not_depend_on_the_test_split(runs, choice: str) -> None:
    as_is, reversed_test = runs
    assert CHOICES[choice](as_is) == CHOICES[choice](reversed_test)
