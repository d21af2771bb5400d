import numpy as np

from seqlm.core.atomic import save_npy
from seqlm.data.corpus import encode_split, freq_table_csv, ids_path, load_split, ngram_counts, tokens_path
from seqlm.data.tokens import tokenize_lines, write_token_file
from seqlm.data.vocab import VocabParams, build_vocab


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


def test_ngram_counts_are_by_count_then_first_occurrence():
    assert ngram_counts(list("abab c"), 2)[:2] == [(("a", "b"), 2), (("b", "a"), 1)]


def test_frequency_tables_are_ranked_csv():
    csv = freq_table_csv(["the", "cat", "the", "dog"], 1, "word")
    assert csv.splitlines() == ["rank,ngram,count", "1,the,2", "2,cat,1", "3,dog,1"]
    assert freq_table_csv(["the", "cat", "the", "cat"], 2, "word").splitlines()[1] == "1,the cat,2"
