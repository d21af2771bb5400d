"""Chunked n-gram counting and scoring give exactly what whole-stream counting gives."""

import numpy as np
import pytest

from seqlm.core.errors import DataError
from seqlm.ngram import count_ngrams, counting, fit_ngram
from seqlm.ngram import counts as counts_module
from seqlm.ngram import runs as runs_module
from seqlm.ngram.counts import count_stream_ids

FIELDS = ("keys", "suffix", "raw", "starts_with_bos")


def whole_stream_counts(sequences, vocab_size, max_order, bos_id):
    """Reference: every n-gram of every sequence counted with a Python dict."""
    out = [dict() for _ in range(max_order)]
    for seq in sequences:
        seq = [int(x) for x in seq]
        for i in range(len(seq)):
            for k in range(1, max_order + 1):
                gram = tuple(seq[i : i + k])
                if len(gram) < k or (k == 1 and gram[0] == bos_id):
                    continue
                out[k - 1][gram] = out[k - 1].get(gram, 0) + 1
    return out


def random_sequences(rng, count):
    vocab_size = int(rng.integers(3, 9))
    bos = int(rng.integers(0, vocab_size))
    seqs = []
    for _ in range(count):
        x = rng.integers(0, vocab_size - 1, size=int(rng.integers(1, 40)))
        x[x >= bos] += 1  # no begin marker inside a sequence
        seqs.append(np.r_[bos, x])
    return seqs, vocab_size, bos


def decoded(counts, k):
    """{n-gram tuple: raw count} of order k, decoded from the keys."""
    grams = [(i,) for i in range(counts.vocab_size)]
    for j in range(2, k + 1):
        grams = [grams[p] + (w,) for p, w in zip(counts.prefix(j), counts.last(j), strict=True)]
    return {g: int(c) for g, c in zip(grams, counts.raw[k - 1], strict=True) if c}


@pytest.fixture(params=["dense", "sorted"])
def key_tables(request, monkeypatch):
    """Both ways of counting and looking up keys: a table over the whole key space (small spaces)
    and sorted unique keys (large ones), forced here on the same small data."""
    if request.param == "sorted":
        monkeypatch.setattr(counting, "DENSE_LIMIT", 0)
        monkeypatch.setattr(counts_module, "DENSE_LOOKUP_LIMIT", 0)
    monkeypatch.setattr(counts_module, "DENSE_QUERIES", 1)
    return request.param


@pytest.mark.parametrize("seed", range(12))
def test_chunked_counting_equals_whole_stream_counting_at_any_chunk_size(seed, key_tables):
    rng = np.random.default_rng(seed)
    seqs, vocab_size, bos = random_sequences(rng, int(rng.integers(1, 6)))
    max_order = int(rng.integers(1, 7))
    whole = count_ngrams(seqs, vocab_size, max_order, bos, chunk=10**6)  # one chunk
    reference = whole_stream_counts(seqs, vocab_size, max_order, bos)
    for k in range(1, max_order + 1):
        assert decoded(whole, k) == reference[k - 1]
    for chunk in (1, 2, 3, 7):  # n-grams across every kind of chunk border
        chunked = count_ngrams(seqs, vocab_size, max_order, bos, chunk=chunk)
        for field in FIELDS:
            for a, b in zip(getattr(whole, field), getattr(chunked, field), strict=True):
                assert np.array_equal(a, b), (field, chunk)
        assert (chunked.sequences, chunked.tokens) == (whole.sequences, whole.tokens)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int64])
def test_stream_counting_reads_unsigned_ids_in_chunks_and_scores_identically(
    tmp_path, dtype, key_tables
):
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 12, size=500)  # id 0 is the begin marker here
    path = tmp_path / "train.npy"
    np.save(path, ids.astype(dtype))
    mapped = np.load(path, mmap_mode="r")
    whole = count_ngrams([np.r_[0, ids]], 12, 5, 0)
    chunked = count_stream_ids(mapped, 12, 5, 0, chunk=16)
    for field in FIELDS:
        for a, b in zip(getattr(whole, field), getattr(chunked, field), strict=True):
            assert np.array_equal(a, b)
    held_out = rng.integers(0, 12, size=300).astype(dtype)
    for smoothing in ("kneser_ney", "laplace"):
        model = fit_ngram(chunked, 5, smoothing)
        reference = model.sequence_logprobs([np.r_[0, held_out.astype(np.int64)]])
        for chunk in (1, 3, 64, 10**6):
            assert np.array_equal(model.target_logprobs(held_out, chunk=chunk), reference)


def test_stream_counting_refuses_ids_outside_the_vocabulary_or_a_begin_marker_inside():
    with pytest.raises(DataError, match="token id 9 is outside the vocabulary 0..4"):
        count_stream_ids(np.array([1, 2, 9], dtype=np.uint8), 5, 3, 0, chunk=2)
    with pytest.raises(DataError, match="must start with the begin marker"):
        count_stream_ids(np.array([1, 0, 2], dtype=np.uint8), 5, 3, 0, chunk=2)


def decoded_grams(counts, k):
    """Each row's n-gram of order k as a tuple of ids, decoded from the keys."""
    grams = [(i,) for i in range(counts.vocab_size)]
    for j in range(2, k + 1):
        grams = [grams[p] + (w,) for p, w in zip(counts.prefix(j), counts.last(j), strict=True)]
    return grams


@pytest.mark.parametrize("seed", range(6))
def test_each_ngram_suffix_row_is_the_ngram_of_its_last_tokens(seed, key_tables):
    rng = np.random.default_rng(seed)
    seqs, vocab_size, bos = random_sequences(rng, int(rng.integers(2, 6)))
    counts = count_ngrams(seqs, vocab_size, 5, bos, chunk=5)
    for k in range(2, 6):
        lower, grams = decoded_grams(counts, k - 1), decoded_grams(counts, k)
        for gram, row in zip(grams, counts.suffix[k - 1], strict=True):
            assert lower[row] == gram[1:]


@pytest.mark.parametrize("workers", [2, 3, 5])
def test_counting_over_several_processes_gives_the_same_tables_to_the_byte(workers, key_tables):
    rng = np.random.default_rng(7)
    ids = rng.integers(1, 9, size=3000)
    ids[rng.random(3000) < 0.3] = 3  # some structure: frequent n-grams and rare ones
    one = count_stream_ids(ids, 9, 6, 0, chunk=97)
    many = count_stream_ids(ids, 9, 6, 0, chunk=97, workers=workers)
    for field in FIELDS:
        for a, b in zip(getattr(one, field), getattr(many, field), strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b), field
    assert (many.sequences, many.tokens) == (one.sequences, one.tokens)


def test_a_bad_id_found_by_a_worker_is_reported():
    ids = np.r_[np.ones(500, dtype=np.int64), 42]
    with pytest.raises(DataError, match="token id 42 is outside the vocabulary 0..8"):
        count_stream_ids(ids, 9, 3, 0, chunk=50, workers=2)


def test_spans_are_whole_chunks_and_cover_the_stream():
    from seqlm.core.workers import split_spans

    assert split_spans(10, 3, 2) == [(0, 6), (6, 10)]
    assert split_spans(10, 3, 8) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert split_spans(5, 100, 4) == [(0, 5)]
    for size, chunk, parts in [(1000, 7, 3), (999, 10, 16), (64, 64, 2)]:
        spans = split_spans(size, chunk, parts)
        assert spans[0][0] == 0 and spans[-1][1] == size
        assert all(b == c for (_, b), (c, _) in zip(spans, spans[1:], strict=False))
        assert all(a % chunk == 0 for a, _ in spans)


def test_scoring_in_parts_gives_the_whole_split_s_values_chunk_by_chunk():
    rng = np.random.default_rng(3)
    ids = rng.integers(1, 9, size=2000)
    model = fit_ngram(count_stream_ids(ids, 9, 4, 0), 4)
    held = rng.integers(1, 9, size=777)
    parts = list(model.target_logprob_parts(held, chunk=100))
    assert [p.size for p in parts] == [100] * 7 + [77]
    assert np.array_equal(np.concatenate(parts), model.target_logprobs(held))


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_a_split_scored_over_processes_has_the_figures_of_one_scored_whole(
    workers, monkeypatch, tmp_path
):
    from seqlm.data.corpus import SplitData
    from seqlm.ngram import baseline
    from seqlm.perplexity import load_target_logprobs, save_target_logprobs, score_split

    monkeypatch.setattr(baseline, "SCORE_CHUNK", 50)
    rng = np.random.default_rng(5)
    model = fit_ngram(count_stream_ids(rng.integers(1, 9, size=3000), 9, 4, 0), 4)
    ids = rng.integers(1, 9, size=777)
    split = SplitData(name="val", ids=ids, lines=1, characters=800, oov=0)
    got = baseline.score_streamed(model, split, workers, tmp_path / "streamed")
    whole_lp = model.target_logprobs(ids)
    whole = score_split(whole_lp, 800, 0)
    assert got.tokens == 777 and got.nll == pytest.approx(whole.nll, rel=1e-12)
    assert got == baseline.score_streamed(model, split, 1)  # the very same floats on one
    saved = save_target_logprobs(tmp_path / "whole", "val", whole_lp)
    streamed = tmp_path / "streamed" / "val_logprobs.npy"
    assert streamed.read_bytes() == saved.read_bytes()  # the file np.save writes, to the byte
    assert np.array_equal(load_target_logprobs(tmp_path / "streamed", "val"), whole_lp)


def test_a_short_stream_of_logprobs_leaves_no_file(tmp_path):
    from seqlm.perplexity import LogprobsWriter

    with pytest.raises(DataError, match="wrote 3 log-probabilities of 5"):
        with LogprobsWriter(tmp_path, "val", 5) as writer:
            writer.write(np.zeros(3))
    assert list(tmp_path.iterdir()) == []


def test_counting_spills_into_the_folder_it_is_given_and_leaves_nothing(tmp_path, monkeypatch):
    folders = []
    write = runs_module.Run.write.__func__

    def spy(cls, folder, keys, counts):
        folders.append(folder)
        return write(cls, folder, keys, counts)

    monkeypatch.setattr(runs_module.Run, "write", classmethod(spy))
    ids = np.random.default_rng(0).integers(1, 9, size=500)
    count_stream_ids(ids, 9, 4, 0, chunk=50, spill_dir=tmp_path / "out")
    assert folders and all(f.parent == tmp_path / "out" for f in folders)
    assert list((tmp_path / "out").iterdir()) == []  # the temporary folder is gone


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("seed", range(4))
def test_counts_spilled_to_many_runs_are_the_in_memory_counts(seed, workers, monkeypatch):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 9, size=2500)
    ids[rng.random(2500) < 0.4] = 2
    whole = count_stream_ids(ids, 9, 6, 0, chunk=10**6)  # one chunk: in memory, no runs
    monkeypatch.setattr(counting, "DENSE_LIMIT", 0)  # every order through the runs
    monkeypatch.setattr(counting, "SPILL_BYTES", 16 * 40)  # a run every 40 pending pairs
    monkeypatch.setattr(runs_module, "MERGE_BYTES", 16 * 16)  # merged 16 pairs at a time
    spilled = count_stream_ids(ids, 9, 6, 0, chunk=61, workers=workers)
    for field in FIELDS:
        for a, b in zip(getattr(whole, field), getattr(spilled, field), strict=True):
            assert np.array_equal(a, b), field


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_the_train_score_from_the_tables_is_the_streamed_score(order):
    from seqlm.data.corpus import SplitData
    from seqlm.ngram import baseline

    rng = np.random.default_rng(order)
    train = rng.integers(1, 9, size=4000) * (rng.random(4000) < 0.9)  # with a few <unk> = 0
    counts = count_stream_ids(train, 10, 5, 9)
    split = SplitData(name="train", ids=train, lines=1, characters=4100, oov=0)
    model = fit_ngram(counts, order)
    got = baseline.score_train(model, split, 1)
    streamed = baseline.score_streamed(model, split, 1)
    assert model.training_stream_nll() is not None  # no pass over the split was made
    assert got.tokens == streamed.tokens == 4000
    assert got.nll == pytest.approx(streamed.nll, rel=1e-12)


def test_a_pruned_or_laplace_model_scores_train_by_streaming():
    counts = count_stream_ids(np.random.default_rng(0).integers(1, 9, size=3000), 9, 4, 0)
    assert fit_ngram(counts, 4, prune=[0, 1]).training_stream_nll() is None
    assert not hasattr(fit_ngram(counts, 4, "laplace"), "training_stream_nll")
