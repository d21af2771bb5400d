"""End to end: the data half of the pipeline with the real ``dvc repro`` in a throw-away repo."""

import hashlib
import json

import pytest

pytestmark = pytest.mark.slow

DATA_STAGES = ("download", "clean", "tokenize", "vocab", "corpus")


def ran_stages(output: str) -> list[str]:
    return [s for s in DATA_STAGES if f"Running stage '{s}'" in output]


def hashes(project) -> dict[str, str]:
    out = {}
    for path in sorted((project.root / "data").rglob("*")):
        if path.is_file():
            out[str(path.relative_to(project.root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    out["metrics/data.json"] = hashlib.sha256(
        (project.root / "metrics/data.json").read_bytes()
    ).hexdigest()
    return out


def test_dvc_repro_builds_the_data_stages_and_a_rerun_is_a_no_op(dvc_project):
    first = dvc_project.dvc("repro", "corpus")
    assert ran_stages(first.stdout) == list(DATA_STAGES)
    stats = json.loads((dvc_project.root / "metrics/data.json").read_text())
    assert set(stats) >= {"train", "val", "test", "vocab_size"}
    for split in ("train", "val", "test"):
        assert set(stats[split]) >= {"lines", "tokens", "characters", "oov"}
        assert stats[split]["tokens"] > 0
    vocab_rows = (dvc_project.root / "data/vocab.tsv").read_text().splitlines()[1:]
    assert stats["vocab_size"] == len(vocab_rows)
    assert [r.split("\t")[0] for r in vocab_rows[:3]] == ["<unk>", "<bos>", " "]

    again = dvc_project.dvc("repro", "corpus")
    assert ran_stages(again.stdout) == []
    status = dvc_project.dvc("status", "corpus")
    assert "changed" not in status.stdout and "modified" not in status.stdout


def test_the_data_outputs_are_byte_identical_from_run_to_run(dvc_project):
    dvc_project.dvc("repro", "corpus")
    before = hashes(dvc_project)
    dvc_project.dvc("repro", "--force", "corpus")
    assert hashes(dvc_project) == before


def test_changing_the_tokenization_reruns_exactly_the_stages_that_read_it(dvc_project):
    dvc_project.dvc("repro", "corpus")
    dvc_project.set_params(tokenize={"token": "word"})
    rerun = dvc_project.dvc("repro", "corpus")
    assert ran_stages(rerun.stdout) == ["tokenize", "vocab", "corpus"]
    stats = json.loads((dvc_project.root / "metrics/data.json").read_text())
    assert stats["token"] == "word" and stats["vocab_size"] > 40


def test_the_zipf_plot_renders_from_the_frequency_tables(dvc_project):
    dvc_project.dvc("repro", "corpus")
    shown = dvc_project.dvc("plots", "show", "--json", "zipf")
    assert "unigrams.csv" in shown.stdout and "trigrams.csv" in shown.stdout
