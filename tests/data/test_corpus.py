"""The corpus stage's logic: split statistics, reading a split back, frequency tables, and the
data stages run in memory."""

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from seqlm.core.atomic import save_npy
from seqlm.core.errors import DataError
from seqlm.data import freq as freq_module
from seqlm.data.corpus import (
    encode_split,
    encode_split_file,
    freq_table_csv,
    ids_path,
    load_split,
    prepare_text,
    tokens_path,
)
from seqlm.data.freq import FreqCounter, freq_tables_csv, unique_first
from seqlm.data.tokens import stream, tokenize_lines, write_token_file
from seqlm.data.vocab import build_vocab
from seqlm.params import TokenizeParams, VocabParams


def pandas_freq_table_csv(toks: Sequence[str], n: int, token: str) -> str:
    """The frequency table as the corpus stage made it before it counted in chunks (pandas over
    the whole stream of strings): the reference the streamed tables must equal byte for byte."""
    tokens = pd.Series(list(toks), dtype=object)
    size = max(len(tokens) - n + 1, 0)
    parts = [tokens.iloc[i : i + size].reset_index(drop=True) for i in range(n)]
    grams = parts[0].str.cat(parts[1:], sep=" " if token == "word" else "") if size else parts[0]
    counts = grams.groupby(grams, sort=False).size()  # first-occurrence order
    counts = counts.sort_values(ascending=False, kind="stable")
    table = pd.DataFrame(
        {"rank": np.arange(1, counts.size + 1), "ngram": counts.index, "count": counts.to_numpy()}
    )
    return table.to_csv(index=False, lineterminator="\n")


def test_split_statistics_count_lines_tokens_characters_and_oov():
    vocab = build_vocab(["the", "cat"], VocabParams(reserved=()))
    token_lines = tokenize_lines(["the dog", "", "the cat sat"], "word")
    data = encode_split("val", token_lines, "word", vocab)
    assert data.ids.tolist() == [1, 0, 1, 2, 0]
    assert data.stats() == {
        "lines": 2,
        "tokens": 5,
        "characters": 19,
        "bytes": 19,
        "words": 5,
        "oov": 2,
        "oov_rate": 0.4,
    }


def test_a_split_reads_back_as_it_was_written(tmp_path):
    vocab = build_vocab(list("ab ab"), VocabParams())
    token_lines = tokenize_lines(["ab", "ba c"], "char")
    data = encode_split("test", token_lines, "char", vocab)
    write_token_file(tokens_path(tmp_path, "test"), [token_lines], "char")
    save_npy(ids_path(tmp_path, "test"), data.ids)
    back = load_split(tmp_path, tmp_path, "test", "char")
    assert np.array_equal(back.ids, data.ids) and back.ids.dtype == np.uint8
    assert isinstance(back.ids, np.memmap) and not back.ids.flags.writeable  # mapped, read-only
    assert (back.lines, back.characters, back.oov) == (2, 7, 1)


def test_the_corpus_stage_encodes_a_token_file_in_batches_to_a_mapped_compact_file(tmp_path):
    tok = TokenizeParams(token="char", line_end="eos")
    token_lines = tokenize_lines(["abc", "", "ba cd"] * 50, tok)
    vocab = build_vocab(stream(token_lines[:1], tok), VocabParams())  # " " and "d" unseen
    write_token_file(tokens_path(tmp_path, "val"), [token_lines[:7], token_lines[7:]], tok)
    whole = encode_split("val", token_lines, tok, vocab)
    out = ids_path(tmp_path / "ids", "val")
    freq = FreqCounter(tok.token, threads=3)  # the orders side by side
    data, names = encode_split_file("val", tmp_path, tok, vocab, out, freq)
    assert data.ids.dtype == np.uint8 and isinstance(data.ids, np.memmap)
    assert np.array_equal(data.ids, whole.ids) and data.stats() == whole.stats()
    assert data.oov == 100  # " " and "d" of the 50 lines "ba cd"
    tables = freq.tables_csv(names)
    for n in (1, 2, 3):
        assert tables[n] == pandas_freq_table_csv(stream(token_lines, tok), n, "char")
    assert load_split(tmp_path / "ids", tmp_path, "val", tok).stats() == whole.stats()


def test_ids_that_disagree_with_the_token_file_are_refused(tmp_path):
    vocab = build_vocab(list("ab"), VocabParams())
    token_lines = tokenize_lines(["ab", "ba"], "char")
    write_token_file(tokens_path(tmp_path, "val"), [token_lines], "char")
    save_npy(ids_path(tmp_path, "val"), encode_split("val", token_lines[:1], "char", vocab).ids)
    with pytest.raises(DataError, match="2 ids but its token file 5 tokens"):
        load_split(tmp_path, tmp_path, "val", "char")


def test_frequency_tables_rank_by_count_then_first_occurrence():
    assert freq_table_csv(list("abab c"), 2, "char").splitlines() == [
        "rank,ngram,count",
        "1,ab,2",
        "2,ba,1",
        "3,b ,1",
        "4, c,1",
    ]
    assert freq_table_csv(list("ab"), 3, "char") == "rank,ngram,count\n"


@pytest.mark.parametrize("dense_keys", [0, 1 << 12, freq_module.DENSE_KEYS])
def test_streamed_frequency_tables_equal_the_pandas_ones_on_the_tiny_corpus(
    tiny_text, dense_keys, monkeypatch
):
    # 0: every order sorted; 4,096: the key space outgrows the dense table as new tokens come
    monkeypatch.setattr(freq_module, "DENSE_KEYS", dense_keys)
    for token in ("char", "word"):
        toks = stream(
            prepare_text(tiny_text, TokenizeParams(token=token)).token_lines["train"], token
        )
        for sizes in (
            [len(toks)],
            [1, 2, 3] * (len(toks) // 6 + 1),
            [5, 1, 17] * (len(toks) // 23 + 1),
        ):
            pieces, at = [], 0
            for size in sizes:  # the stream cut at awkward places: n-grams across the cuts
                pieces.append(toks[at : at + size])
                at += size
            tables = freq_tables_csv(pieces, token)
            for n in (1, 2, 3):
                assert tables[n] == pandas_freq_table_csv(toks, n, token), (token, n, sizes[:3])


def test_streamed_frequency_tables_keep_tokens_the_vocabulary_would_merge():
    toks = ["x,y", '"q"', "a", "b", "a", "b", "c", "a", "c", "a"] * 3
    for n in (1, 2, 3):
        assert freq_tables_csv([toks[:4], toks[4:]], "word")[n] == pandas_freq_table_csv(
            toks, n, "word"
        )


def test_frequency_tables_are_ranked_csv():
    csv = freq_table_csv(["the", "cat", "the", "dog"], 1, "word")
    assert csv.splitlines() == ["rank,ngram,count", "1,the,2", "2,cat,1", "3,dog,1"]
    assert freq_table_csv(["the", "cat", "the", "cat"], 2, "word").splitlines()[1] == "1,the cat,2"


def test_a_csv_field_that_needs_quotes_is_quoted():
    assert freq_table_csv(["a,b", "a,b"], 1, "word").splitlines()[1] == '1,"a,b",2'


def test_the_data_stages_in_memory_give_splits_vocab_and_ids():
    text = "The Time Machine\n\nby H. G. Wells\none two\nthree\nsix\nseven eight\nnine\nten\n"
    split = TokenizeParams(token="word", train_fraction=0.6, val_fraction=0.2, test_fraction=0.2)
    data = prepare_text(text, split)
    assert data.token_lines["train"] == [
        ["the", "time", "machine"],
        ["by", "h", "g", "wells"],
        ["one", "two"],
        ["three"],
    ]
    assert data.vocab.tokens[:2] == ("<unk>", "<bos>") and "seven" not in data.vocab
    assert data.splits["val"].ids.tolist() == [0, 0, 0]  # six seven eight: unseen in train
    from_bytes = prepare_text(text.encode("utf-8"), split)
    assert (from_bytes.vocab, from_bytes.token_lines) == (data.vocab, data.token_lines)


@pytest.mark.parametrize("space", [50, 2**60])  # packed with the index and sorted, or np.unique
def test_unique_keys_with_first_index_and_count_either_way(space):
    keys = np.random.default_rng(0).integers(0, 50, size=500)
    uniq, first, counts = unique_first(keys, space)
    want = np.unique(keys, return_index=True, return_counts=True)
    for got, ref in zip((uniq, first, counts), want, strict=True):
        assert np.array_equal(got, ref)
