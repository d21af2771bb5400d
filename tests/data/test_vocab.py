import pytest

from seqlm.core.errors import DataError, ParamError
from seqlm.data.vocab import Vocab, build_vocab, load_vocab, save_vocab
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
