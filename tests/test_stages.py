"""Each data stage, run as DVC runs it, fails on bad input with one clear message and no output."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from seqlm.data.corpus import load_split, prepare_text, tokens_path
from seqlm.data.tokens import read_token_file
from seqlm.data.vocab import load_vocab
from seqlm.params import CleanParams, TokenizeParams, VocabParams, load_section
from stages import clean, corpus, download, tokenize, vocab

BOOK = b"The Time Machine\n\nby H. G. Wells\n" + b"".join(
    f"line {i}: the time traveller spoke of time and space\n".encode() for i in range(60)
)


def write_params(tmp_path: Path, **sections) -> Path:
    params = {
        "download": {
            "url": (tmp_path / "book.txt").as_uri(),
            "sha1": hashlib.sha1(BOOK).hexdigest(),
        },
        "clean": {"mode": "textbook", "strip_gutenberg": False},
        "tokenize": {
            "token": "char",
            "train_fraction": 0.8,
            "val_fraction": 0.1,
            "test_fraction": 0.1,
        },
        "vocab": {"min_freq": 1, "reserved": ["<bos>"]},
    }
    for name, values in sections.items():
        params[name].update(values)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def data_tok(params: Path) -> TokenizeParams:
    return load_section(TokenizeParams, "tokenize", params)


def run_all(tmp_path: Path, params: Path) -> None:
    """Every data stage, in order, as dvc.yaml runs them (folders under ``tmp_path``)."""
    p = ["--params", str(params)]
    assert download.main([*p, "--out-dir", str(tmp_path / "raw")]) == 0
    assert (
        clean.main([*p, "--raw-dir", str(tmp_path / "raw"), "--out-dir", str(tmp_path / "clean")])
        == 0
    )
    assert (
        tokenize.main(
            [*p, "--clean-dir", str(tmp_path / "clean"), "--out-dir", str(tmp_path / "tok")]
        )
        == 0
    )
    assert (
        vocab.main(
            [*p, "--tokens-dir", str(tmp_path / "tok"), "--out", str(tmp_path / "vocab.tsv")]
        )
        == 0
    )
    assert (
        corpus.main(
            [
                *p,
                "--tokens-dir",
                str(tmp_path / "tok"),
                "--vocab",
                str(tmp_path / "vocab.tsv"),
                "--out-dir",
                str(tmp_path / "ids"),
                "--freq-dir",
                str(tmp_path / "freq"),
                "--metrics",
                str(tmp_path / "data.json"),
            ]
        )
        == 0
    )


@pytest.fixture
def book(tmp_path, monkeypatch):
    monkeypatch.delenv("SEQLM_MIRROR", raising=False)
    (tmp_path / "book.txt").write_bytes(BOOK)
    return tmp_path


def test_the_data_stages_chain_into_consistent_outputs(book):
    run_all(book, write_params(book))
    stats = json.loads((book / "data.json").read_text())
    vocab_lines = (book / "vocab.tsv").read_text().splitlines()
    assert stats["vocab_size"] == len(vocab_lines) - 1
    for split in ("train", "val", "test"):
        ids = np.load(book / "ids" / f"{split}.npy")
        assert stats[split]["tokens"] == ids.size == stats[split]["characters"]
    assert stats["train"]["lines"] > stats["val"]["lines"] > 0
    assert (book / "freq" / "trigrams.csv").read_text().startswith("rank,ngram,count\n1,")


@pytest.mark.parametrize("token", ["char", "word"])
def test_the_data_stages_in_memory_leave_what_the_stages_write(book, token):
    params = write_params(book, tokenize={"token": token})
    run_all(book, params)
    data = prepare_text(
        BOOK,
        load_section(TokenizeParams, "tokenize", params),
        load_section(VocabParams, "vocab", params),
        load_section(CleanParams, "clean", params),
    )
    assert data.vocab == load_vocab(book / "vocab.tsv")
    for name, split in data.splits.items():
        tok_file = tokens_path(book / "tok", name)
        assert data.token_lines[name] == read_token_file(tok_file, token)
        on_disk = load_split(book / "ids", book / "tok", name, data_tok(params))
        assert np.array_equal(split.ids, on_disk.ids) and split.stats() == on_disk.stats()


def test_the_vocab_is_built_from_the_train_split_only(book):
    # a word that appears only in the last lines (val/test) must not enter the vocabulary
    (book / "book.txt").write_bytes(BOOK + b"zyzzyva\n" * 2)
    params = write_params(
        book,
        tokenize={"token": "word"},
        download={"sha1": hashlib.sha1(BOOK + b"zyzzyva\n" * 2).hexdigest()},
    )
    run_all(book, params)
    assert "zyzzyva" not in (book / "vocab.tsv").read_text()
    assert json.loads((book / "data.json").read_text())["test"]["oov"] == 2


def test_a_checksum_mismatch_fails_the_download_stage_with_nothing_written(book, capsys):
    params = write_params(book, download={"sha1": "f" * 40})
    out = book / "raw"
    assert download.main(["--params", str(params), "--out-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and "f" * 40 in err and hashlib.sha1(BOOK).hexdigest() in err
    assert not out.exists() or list(out.iterdir()) == []


def test_an_unknown_tokenization_fails_and_removes_stale_outputs(book, capsys):
    run_all(book, write_params(book))
    params = write_params(book, tokenize={"token": "subword"})
    rc = tokenize.main(
        [
            "--params",
            str(params),
            "--clean-dir",
            str(book / "clean"),
            "--out-dir",
            str(book / "tok"),
        ]
    )
    assert rc == 1
    assert (
        "tokenize.token = 'subword' is not a tokenization; choose one of: word, char"
        in capsys.readouterr().err
    )
    assert list((book / "tok").iterdir()) == []


def test_an_unknown_params_key_is_named(book, capsys):
    params = write_params(book, vocab={"min_frequency": 2})
    rc = vocab.main(
        ["--params", str(params), "--tokens-dir", str(book), "--out", str(book / "v.tsv")]
    )
    assert rc == 1
    assert "unknown key(s) in params section 'vocab': min_frequency" in capsys.readouterr().err


def test_a_corpus_without_letters_fails_the_clean_stage(book, capsys):
    (book / "raw").mkdir()
    (book / "raw" / "corpus.txt").write_bytes(b"1234\n")
    rc = clean.main(
        [
            "--params",
            str(write_params(book)),
            "--raw-dir",
            str(book / "raw"),
            "--out-dir",
            str(book / "clean"),
        ]
    )
    assert rc == 1 and "no letters" in capsys.readouterr().err
    assert not (book / "clean" / "corpus.txt").exists()


def test_a_corpus_too_small_to_split_fails_the_tokenize_stage(book, capsys):
    (book / "clean").mkdir()
    (book / "clean" / "corpus.txt").write_text("only\none\nline\n")
    rc = tokenize.main(
        [
            "--params",
            str(write_params(book)),
            "--clean-dir",
            str(book / "clean"),
            "--out-dir",
            str(book / "tok"),
        ]
    )
    assert rc == 1 and "has no text: the corpus has too few lines" in capsys.readouterr().err
