import collections
import hashlib
import locale
import re

import numpy as np
import pytest

from seqlm.core.errors import DataError, ParamError
from seqlm.data.vocab import (
    Vocab,
    build_vocab,
    count_tokens,
    load_vocab,
    parse_vocab,
    save_vocab,
    vocab_from_counts,
)
from seqlm.params import VocabParams


def test_tokens_are_ordered_by_count_with_ties_in_first_occurrence_order():
    vocab = build_vocab(list("abcbcd"), VocabParams(reserved=()))
    assert vocab.tokens == ("<unk>", "b", "c", "a", "d")
    assert vocab.counts == (0, 2, 2, 1, 1)


def test_unk_is_index_zero_then_reserved_tokens_in_the_given_order():
    vocab = build_vocab(list("aab"), VocabParams(reserved=("<pad>", "<bos>", "<eos>")))
    assert vocab.tokens[:4] == ("<unk>", "<pad>", "<bos>", "<eos>")
    assert vocab.id_of("<bos>") == 2


def test_rare_tokens_fold_into_unk_and_are_counted_there():
    vocab = build_vocab(list("aaabbc"), VocabParams(min_freq=2, reserved=()))
    assert vocab.tokens == ("<unk>", "a", "b")
    assert vocab.counts[0] == 1
    assert vocab.encode(list("abcz")).tolist() == [1, 2, 0, 0]


def test_a_vocab_file_round_trips_identically_including_the_space_token(tmp_path):
    vocab = build_vocab(list("the time machine"), VocabParams())
    path = tmp_path / "vocab.tsv"
    save_vocab(vocab, path)
    assert load_vocab(path) == vocab
    assert load_vocab(path).checksum() == vocab.checksum()
    assert path.read_text().splitlines()[0] == "token\tcount"


def test_a_file_that_is_not_a_vocab_is_refused(tmp_path):
    path = tmp_path / "vocab.tsv"
    path.write_text("word,count\n")
    with pytest.raises(DataError, match="not a seqlm vocabulary"):
        load_vocab(path)
    path.write_text("token\tcount\nfoo\tmany\n")
    with pytest.raises(DataError, match="vocab.tsv:2: expected 'token<TAB>count'"):
        load_vocab(path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_freq": 0}, "vocab.min_freq = 0 must be >= 1"),
        ({"reserved": ("<mask>",)}, "vocab.reserved has '<mask>'; allowed: <pad>, <bos>, <eos>"),
        ({"reserved": ("<bos>", "<bos>")}, "lists a token twice"),
    ],
)
def test_bad_vocab_params_are_refused(kwargs, message):
    with pytest.raises(ParamError, match=message):
        VocabParams(**kwargs)


def test_asking_for_a_missing_reserved_token_says_how_to_add_it():
    vocab = Vocab(("<unk>", "a"), (0, 1))
    with pytest.raises(DataError, match="add it to vocab.reserved"):
        vocab.id_of("<bos>")


def test_max_size_keeps_the_most_frequent_tokens_with_ties_stable_and_counts_the_rest_as_unk():
    # counts: b 3, a 2, c 2, d 1; a is seen before c
    stream = list("abcbcbad")
    vocab = build_vocab(stream, VocabParams(max_size=4, reserved=("<bos>",)))
    assert vocab.tokens == ("<unk>", "<bos>", "b", "a")  # a and c tie at 2; a came first
    assert vocab.counts == (3, 0, 3, 2)  # <unk> stands for c, c, d
    assert len(vocab) == 4


def test_a_literal_unk_in_the_text_is_the_unk_token():
    vocab = build_vocab(["the", "<unk>", "cat", "<unk>"], VocabParams(reserved=()))
    assert vocab.tokens == ("<unk>", "the", "cat")
    assert vocab.counts[0] == 2
    assert vocab.encode(["<unk>", "cat", "dog"]).tolist() == [0, 2, 0]


def test_a_max_size_without_room_for_one_token_is_refused():
    for size in (0, -1):
        with pytest.raises(ParamError, match=r"vocab.max_size = .* must be an integer >= 1"):
            VocabParams(max_size=size)
    with pytest.raises(ParamError, match="leaves no room for a single token"):
        VocabParams(max_size=2, reserved=("<bos>",))


def test_tokens_with_a_newline_tab_or_backslash_round_trip_through_the_tsv(tmp_path):
    vocab = build_vocab(["\n", "a", "\t", "\\", "\\n", "a"], VocabParams(reserved=()))
    save_vocab(vocab, tmp_path / "v.tsv")
    text = (tmp_path / "v.tsv").read_text()
    assert text.splitlines()[1:] == ["<unk>\t0", "a\t2", "\\n\t1", "\\t\t1", "\\\\\t1", "\\\\n\t1"]
    assert load_vocab(tmp_path / "v.tsv") == vocab


@pytest.mark.parametrize(
    "tokens, counts, message",
    [
        ((), (), "^a vocabulary must start with '<unk>'$"),
        (("a", "<unk>"), (1, 0), "^a vocabulary must start with '<unk>'$"),
        (("<unk>", "a"), (0,), "^a vocabulary needs one count per token$"),
        (("<unk>", "a", "a"), (0, 1, 1), "^a vocabulary lists a token twice$"),
    ],
)
def test_a_vocabulary_that_breaks_the_format_is_refused(tokens, counts, message):
    with pytest.raises(DataError, match=message):
        Vocab(tokens, counts)


def test_known_tokens_map_to_their_index_and_anything_else_to_unk():
    vocab = Vocab(("<unk>", "<bos>", "a", "b"), (0, 0, 2, 1))
    assert (vocab.index("b"), vocab.index("zz")) == (3, 0)
    assert "a" in vocab and "zz" not in vocab
    ids = vocab.encode(["b", "zz", "a"])
    assert ids.dtype == np.int32 and ids.tolist() == [3, 0, 2]
    assert vocab.decode(ids) == ["b", "<unk>", "a"]


def test_reserved_tokens_in_the_train_stream_count_their_occurrences_and_not_as_unk():
    vocab = build_vocab(["a", "<eos>", "b", "<eos>", "a"], VocabParams(reserved=("<eos>",)))
    assert vocab.tokens == ("<unk>", "<eos>", "a", "b")
    assert vocab.counts == (0, 2, 2, 1)


def test_the_checksum_is_the_sha256_of_the_saved_file(tmp_path):
    vocab = build_vocab(list("abca"), VocabParams())
    save_vocab(vocab, tmp_path / "v.tsv")
    assert vocab.checksum() == hashlib.sha256((tmp_path / "v.tsv").read_bytes()).hexdigest()


def test_blank_lines_in_a_vocabulary_file_are_skipped_wherever_they_are(tmp_path):
    path = tmp_path / "v.tsv"
    path.write_text("token\tcount\n<unk>\t0\n\na\t3\n\n")
    assert load_vocab(path) == Vocab(("<unk>", "a"), (0, 3))


def test_a_missing_vocabulary_file_or_a_bad_escape_in_it_is_refused(tmp_path):
    path = tmp_path / "v.tsv"
    with pytest.raises(DataError, match="v.tsv' does not exist"):
        load_vocab(path)
    token = "ab\\qcdef"  # a backslash before q: not an escape the file format has
    path.write_text(f"token\tcount\n<unk>\t0\n{token}\t1\n")
    message = f"bad escape {token[2:4]!r} in vocabulary token {token!r}"
    with pytest.raises(DataError, match=re.escape(message)):
        load_vocab(path)


def test_escapes_anywhere_in_a_token_round_trip(tmp_path):
    vocab = Vocab(("<unk>", "a\tb", "x\\y\nz", "end\r"), (0, 1, 1, 1))
    save_vocab(vocab, tmp_path / "v.tsv")
    assert load_vocab(tmp_path / "v.tsv") == vocab


def test_the_count_is_read_after_the_last_tab_of_a_row(tmp_path):
    path = tmp_path / "v.tsv"
    path.write_text("token\tcount\n<unk>\t0\na\tb\t7\n")  # a raw tab, as no seqlm file has
    assert load_vocab(path) == Vocab(("<unk>", "a\tb"), (0, 7))


def test_tokens_counted_in_pieces_give_the_vocabulary_of_the_whole_stream():
    stream = list("the time machine by h g wells") + ["<unk>", "the", "<bos>"] * 3
    pieces = [stream[:1], [], stream[1:7], stream[7:]]
    counts = count_tokens(pieces)
    assert list(counts.items()) == list(collections.Counter(stream).items())  # first occurrence
    for params in (VocabParams(), VocabParams(min_freq=2), VocabParams(max_size=6)):
        assert vocab_from_counts(counts, params) == build_vocab(stream, params)


def test_a_vocabulary_not_read_from_a_file_is_called_the_vocabulary_when_refused():
    with pytest.raises(DataError, match="^the vocabulary is not a seqlm vocabulary: first line"):
        parse_vocab("word,count\n")
    with pytest.raises(DataError, match="^the vocabulary:3: expected 'token<TAB>count'"):
        parse_vocab("token\tcount\n<unk>\t0\nfoo\tmany\n")


def test_a_vocabulary_file_is_read_as_utf_8_whatever_the_locale(tmp_path):
    vocab = Vocab(("<unk>", "é", "日本", "ß"), (0, 3, 2, 1))
    save_vocab(vocab, tmp_path / "v.tsv")
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")  # an ASCII locale, as a Windows code page is no UTF-8
    try:
        loaded = load_vocab(tmp_path / "v.tsv")
    finally:
        locale.setlocale(locale.LC_CTYPE, before)
    assert loaded == vocab
