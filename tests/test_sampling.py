"""Generation shared by every model: prefixes read like the corpus, the next-token choice, the text."""

import logging

import numpy as np
import pytest

from seqlm.core.errors import ParamError
from seqlm.data.vocab import Vocab
from seqlm.sampling import (
    TextFormat,
    banned_ids,
    join_tokens,
    next_id,
    read_prefix,
    sampling_distribution,
    separator,
)

CHARS = Vocab(("<unk>", "<bos>", " ", "e", "h", "t"), (0, 0, 3, 3, 2, 2))
WORDS = Vocab(("<unk>", "<bos>", "<eos>", "the", "time"), (0, 0, 0, 2, 1))


def test_sampling_distribution_applies_temperature_and_top_k():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(sampling_distribution(p), p)
    np.testing.assert_allclose(sampling_distribution(p, top_k=2), [0, 0, 3 / 7, 4 / 7])
    hot = sampling_distribution(p, temperature=2.0)
    np.testing.assert_allclose(hot, np.sqrt(p) / np.sqrt(p).sum())
    np.testing.assert_allclose(sampling_distribution(p, banned_ids=[3]), [1 / 6, 2 / 6, 3 / 6, 0])


@pytest.mark.parametrize(
    "kwargs, named", [({"temperature": 0}, "temperature = 0"), ({"top_k": -1}, "top_k = -1")]
)
def test_a_bad_temperature_or_top_k_is_named(kwargs, named):
    with pytest.raises(ParamError, match=named):
        sampling_distribution(np.array([0.5, 0.5]), **kwargs)


def test_greedy_takes_the_most_likely_allowed_id_and_sampling_follows_the_seed():
    p = np.array([0.1, 0.6, 0.3])
    assert next_id(p, greedy=True) == 1
    assert next_id(p, greedy=True, banned_ids=[1]) == 2
    draws = [next_id(p, rng=np.random.default_rng(7)) for _ in range(3)]
    assert len(set(draws)) == 1  # the same seed, the same draw
    rng = np.random.default_rng(0)
    assert {next_id(p, rng=rng, banned_ids=[1]) for _ in range(200)} == {0, 2}
    with pytest.raises(ValueError, match="numpy Generator"):
        next_id(p)


def test_the_stream_markers_are_banned_and_unknown_is_not():
    assert banned_ids(WORDS) == [1, 2]
    assert banned_ids(CHARS) == [1]


def test_a_prefix_is_cleaned_like_the_corpus_before_it_is_encoded(caplog):
    prefix = read_prefix("The  TIME!", "word", WORDS)
    assert prefix.text == "the time"
    assert prefix.ids.tolist() == [3, 4] and prefix.ids.dtype == np.int64
    chars = read_prefix("The, the", "char", CHARS)
    assert chars.text == "the the"
    assert chars.ids.tolist() == [5, 4, 3, 2, 5, 4, 3]
    with caplog.at_level(logging.WARNING, logger="seqlm.sampling"):
        unknown = read_prefix("the machine", "word", WORDS)
    assert unknown.ids.tolist() == [3, 0]
    assert "'machine'" in caplog.text and "<unk>" in caplog.text


def test_tokens_become_text_and_a_continuation_follows_its_prefix():
    assert join_tokens(["t", "h", "e", " ", "t"], "char") == "the t"
    assert join_tokens(["the", "time"], "word") == "the time"
    assert separator("the time", "word") == " "
    assert separator("the time", "char") == ""
    assert separator("", "word") == ""


def test_where_every_line_ends_with_eos_it_is_generated_and_written_as_a_line_break():
    words = TextFormat(token="word", line_end="eos")
    assert join_tokens(["<eos>", "the", "time", "<eos>", "<eos>", "the"], words) == (
        "\nthe time\n\nthe"
    )
    assert (
        join_tokens(["a", "b", "<eos>", "c"], TextFormat(token="char", line_end="eos")) == "ab\nc"
    )
    assert (
        join_tokens(["the", "<eos>", "time"], "word") == "the <eos> time"
    )  # a word like any other
    assert banned_ids(WORDS, words) == [WORDS.id_of("<bos>")]
    assert banned_ids(WORDS, "word") == [WORDS.id_of("<bos>"), WORDS.id_of("<eos>")]
