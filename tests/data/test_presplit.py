"""A corpus published as train / val / test files goes through the data stages as it is."""

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from seqlm.data.corpus import load_split, prepare_text
from seqlm.data.vocab import load_vocab
from seqlm.params import CleanParams, TokenizeParams, VocabParams
from stages import clean, corpus, download, tokenize, vocab

FILES = {
    "train": b"the cat sat <unk> .\nthe dog sat .\nA cat , the dog\n",
    "val": b"the cat sat .\r\n",
    "test": b"\xef\xbb\xbfthe bird sat\n\nthe cat",  # a BOM, an empty line, no final newline
}
TOK = TokenizeParams(token="word", line_end="eos")


def write_params(root: Path, files: dict[str, bytes], **sha1s: str) -> Path:
    splits = {}
    for name, data in files.items():
        (root / f"{name}-file.txt").write_bytes(data)
        splits[name] = {
            "url": (root / f"{name}-file.txt").as_uri(),
            "sha1": sha1s.get(name, hashlib.sha1(data).hexdigest()),
        }
    params = {
        "download": {"splits": splits},
        "clean": {"mode": "none"},
        "tokenize": {"token": "word", "line_end": "eos"},
        "vocab": {"min_freq": 1, "max_size": 8, "reserved": ["<bos>"]},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root / "params.yaml"


def run_data_stages(root: Path, params: Path) -> int:
    p = ["--params", str(params)]
    for stage, args in (
        (download, ["--out-dir", root / "raw"]),
        (clean, ["--raw-dir", root / "raw", "--out-dir", root / "clean"]),
        (tokenize, ["--clean-dir", root / "clean", "--out-dir", root / "tok"]),
        (vocab, ["--tokens-dir", root / "tok", "--out", root / "vocab.tsv"]),
        (
            corpus,
            [
                *("--tokens-dir", root / "tok", "--vocab", root / "vocab.tsv"),
                *("--out-dir", root / "ids", "--freq-dir", root / "freq"),
                *("--metrics", root / "data.json"),
            ],
        ),
    ):
        rc = stage.main([*p, *map(str, args)])
        if rc:
            return rc
    return 0


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.delenv("SEQLM_MIRROR", raising=False)
    return tmp_path


def test_each_published_file_is_its_split_with_an_eos_after_every_line(root):
    assert run_data_stages(root, write_params(root, FILES)) == 0
    voc = load_vocab(root / "vocab.tsv")
    test = load_split(root / "ids", root / "tok", "test", TOK)
    assert voc.decode(test.ids) == ["the", "<unk>", "sat", "<eos>", "<eos>", "the", "cat", "<eos>"]
    assert test.characters == len("the bird sat\n\nthe cat\n")
    val = load_split(root / "ids", root / "tok", "val", TOK)
    assert voc.decode(val.ids) == ["the", "cat", "sat", ".", "<eos>"]  # CRLF is a line end


def test_the_vocabulary_is_cut_to_max_size_by_train_counts_and_a_literal_unk_is_unk(root):
    assert run_data_stages(root, write_params(root, FILES)) == 0
    voc = load_vocab(root / "vocab.tsv")
    # train counts, ties in first-occurrence order: the 3, <eos> 3, cat 2, sat 2, . 2, dog 2, then 1s
    assert voc.tokens == ("<unk>", "<bos>", "the", "<eos>", "cat", "sat", ".", "dog")
    assert voc.counts[0] == 3  # the literal <unk>, "A" and ","


def test_the_stages_and_the_in_memory_pipeline_agree_on_a_presplit_corpus(root):
    assert run_data_stages(root, write_params(root, FILES)) == 0
    data = prepare_text(FILES, TOK, VocabParams(max_size=8), CleanParams(mode="none"))
    assert data.vocab == load_vocab(root / "vocab.tsv")
    for name, split in data.splits.items():
        on_disk = load_split(root / "ids", root / "tok", name, TOK)
        assert np.array_equal(split.ids, on_disk.ids) and split.stats() == on_disk.stats()


def test_a_wrong_sha1_names_the_split_and_nothing_is_left_behind(root, capsys):
    params = write_params(root, FILES, val="0" * 40)
    assert run_data_stages(root, params) == 1
    err = capsys.readouterr().err
    assert "the val file: checksum mismatch" in err and "0" * 40 in err
    assert list((root / "raw").glob("*")) == []  # train was fetched, then removed


def test_a_missing_split_file_is_named_and_nothing_is_left_behind(root, capsys):
    params = write_params(root, FILES)
    (root / "test-file.txt").unlink()
    assert run_data_stages(root, params) == 1
    err = capsys.readouterr().err
    assert "the test file: download of file://" in err and "no such file" in err
    assert list((root / "raw").glob("*")) == []


def test_a_binary_split_file_is_refused_by_clean_with_nothing_written(root, capsys):
    files = {**FILES, "val": bytes(range(256)) * 10}
    assert run_data_stages(root, write_params(root, files)) == 1
    err = capsys.readouterr().err
    assert "val.txt is not" in err and "byte" in err
    assert not (root / "clean").exists() or list((root / "clean").glob("*")) == []


def test_the_download_section_needs_exactly_train_val_and_test(root, capsys):
    params = write_params(root, {k: v for k, v in FILES.items() if k != "test"})
    assert run_data_stages(root, params) == 1
    assert "download.splits has ['train', 'val']; it needs exactly: train, val, test" in (
        capsys.readouterr().err
    )
