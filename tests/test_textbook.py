"""The textbook's functions give the textbook's figures on the real corpus."""

import random

import numpy as np

from seqlm.textbook import (
    Vocab,
    load_corpus_time_machine,
    read_time_machine,
    seq_data_iter_random,
    seq_data_iter_sequential,
    tokenize,
)


def test_read_time_machine_gives_the_books_lines(real_corpus):
    lines = read_time_machine(real_corpus)
    assert len(lines) == 3221
    assert lines[0] == "the time machine by h g wells"
    assert lines[10] == "twinkled and his usually pale face was flushed and animated the"


def test_the_word_vocab_matches_the_book(real_corpus):
    vocab = Vocab(tokenize(read_time_machine(real_corpus), "word"))
    assert len(vocab) == 4580
    assert vocab.idx_to_token[:10] == [
        "<unk>",
        "the",
        "i",
        "and",
        "of",
        "a",
        "to",
        "was",
        "in",
        "that",
    ]
    assert vocab[["the", "i", "and"]] == [1, 2, 3]


def test_the_char_corpus_matches_the_book(real_corpus):
    corpus, vocab = load_corpus_time_machine(path=real_corpus)
    assert (len(corpus), len(vocab)) == (170580, 28)
    assert len(load_corpus_time_machine(max_tokens=1000, path=real_corpus)[0]) == 1000


def test_the_default_path_fetches_through_the_mirror(real_corpus, monkeypatch):
    monkeypatch.setenv("SEQLM_MIRROR", str(real_corpus.parent))
    assert len(read_time_machine()) == 3221


def test_random_sampling_windows_are_shifted_by_one_and_never_overlap():
    corpus = np.arange(100)
    batches = list(seq_data_iter_random(corpus, batch_size=3, num_steps=5, rng=random.Random(0)))
    assert len(batches) == 6  # (99 - offset) // 5 = 19 windows for every offset 0..4, 3 a batch
    starts = []
    for x, y in batches:
        assert x.shape == y.shape == (3, 5)
        assert np.array_equal(y, x + 1)
        assert np.array_equal(x[:, 1:], x[:, :-1] + 1)  # windows are contiguous
        starts += x[:, 0].tolist()
    assert len(set(starts)) == len(starts)
    assert all((s - starts[0]) % 5 == 0 for s in starts)


def test_random_sampling_is_seeded():
    def run(seed):
        return [
            x.tolist() for x, _ in seq_data_iter_random(np.arange(50), 2, 4, random.Random(seed))
        ]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_sequential_batches_continue_each_row_exactly():
    corpus = np.arange(103)
    batches = list(seq_data_iter_sequential(corpus, batch_size=2, num_steps=5, rng=None))
    for (x0, y0), (x1, _) in zip(batches, batches[1:]):
        assert np.array_equal(y0, x0 + 1)
        assert np.array_equal(x1[:, 0], x0[:, -1] + 1)  # state can be carried across batches
    assert batches[0][0][0, 0] == 0


def test_sequential_partitioning_uses_a_random_offset_when_given_an_rng():
    firsts = {
        next(seq_data_iter_sequential(np.arange(200), 2, 5, random.Random(s)))[0][0, 0]
        for s in range(20)
    }
    assert len(firsts) > 1 and max(firsts) <= 5
