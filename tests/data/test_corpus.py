"""The corpus stage's logic: split statistics, reading a split back, frequency tables, and the
data stages run in memory."""

import numpy as np

from seqlm.core.atomic import save_npy
from seqlm.data.corpus import (
    encode_split,
    freq_table,
    freq_table_csv,
    ids_path,
    load_split,
    prepare_text,
    tokens_path,
)
from seqlm.data.tokens import tokenize_lines, write_token_file
from seqlm.data.vocab import build_vocab
from seqlm.params import TokenizeParams, VocabParams


def test_split_statistics_count_lines_tokens_characters_and_oov():
    vocab = build_vocab(["the", "cat"], VocabParams(reserved=()))
    token_lines = tokenize_lines(["the dog", "", "the cat sat"], "word")
    data = encode_split("val", token_lines, "word", vocab)
    assert data.ids.tolist() == [1, 0, 1, 2, 0]
    assert data.stats() == {"lines": 2, "tokens": 5, "characters": 19, "oov": 2, "oov_rate": 0.4}


def test_a_split_reads_back_as_it_was_written(tmp_path):
    vocab = build_vocab(list("ab ab"), VocabParams())
    token_lines = tokenize_lines(["ab", "ba c"], "char")
    data = encode_split("test", token_lines, "char", vocab)
    write_token_file(tokens_path(tmp_path, "test"), token_lines)
    save_npy(ids_path(tmp_path, "test"), data.ids)
    back = load_split(tmp_path, tmp_path, "test", "char")
    assert np.array_equal(back.ids, data.ids) and back.ids.dtype == np.int32
    assert (back.lines, back.characters, back.oov) == (2, 7, 1)


def test_frequency_tables_rank_by_count_then_first_occurrence():
    table = freq_table(list("abab c"), 2, "char")
    assert table.columns.tolist() == ["rank", "ngram", "count"]
    assert table.values.tolist() == [[1, "ab", 2], [2, "ba", 1], [3, "b ", 1], [4, " c", 1]]
    assert freq_table(list("ab"), 3, "char").empty


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
