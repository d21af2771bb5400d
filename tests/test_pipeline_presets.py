"""End to end with the real dvc: `dvc exp run -S dataset=<preset>` composes params.yaml with Hydra
from conf/ and runs a pre-split corpus through every stage."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline_support import STAGES, TINY, ran

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent

SPLIT_TEXT = {
    "train": "the cat sat on the mat .\nthe dog sat on the log .\n" * 30,
    "val": "the cat sat on the log .\n" * 4,
    "test": "the dog sat on the mat .\nthe bird sat .\n" * 3,
}


def test_a_dataset_preset_runs_a_presplit_word_corpus_end_to_end(dvc_project):
    project = dvc_project
    shutil.copytree(REPO_ROOT / "conf", project.root / "conf")
    source = project.root.parent / "tiny-split"
    source.mkdir()
    splits = {}
    for name, text in SPLIT_TEXT.items():
        (source / f"{name}.txt").write_text(text)
        sha1 = hashlib.sha1(text.encode()).hexdigest()
        splits[name] = {"url": (source / f"{name}.txt").as_uri(), "sha1": sha1}
    preset = {
        "dataset": "tinysplit",
        "download": {"splits": splits},
        "clean": {"mode": "none"},
        "tokenize": {"token": "word", "line_end": "eos"},
        "vocab": {"min_freq": 1, "max_size": 9, "reserved": ["<bos>"]},
        "generate": {"prefixes": ["the cat"], "length": 8},
        **{k: v for k, v in TINY.items() if k != "generate"},
    }
    text = "# @package _global_\n" + yaml.safe_dump(preset)
    (project.root / "conf" / "dataset" / "tinysplit.yaml").write_text(text)
    project.dvc("config", "hydra.enabled", "true")
    project.git("add", "-A")
    project.git("commit", "-qm", "a tiny pre-split preset")

    run = project.dvc("exp", "run", "-S", "dataset=tinysplit", "-S", "train.epochs=1")
    assert ran(run.stdout) == list(STAGES)
    params = project.params()
    assert params["dataset"] == "tinysplit" and params["train"]["epochs"] == 1
    data = json.loads((project.root / "metrics/data.json").read_text())
    assert data["token"] == "word" and data["vocab_size"] == 9
    assert data["val"]["tokens"] == 4 * 8  # 7 words and an <eos> a line
    ev = json.loads((project.root / "metrics/eval.json").read_text())
    assert ev["test"]["tokens"] == 3 * (8 + 5)
    assert (project.root / "data/raw/train.txt").read_text() == SPLIT_TEXT["train"]
