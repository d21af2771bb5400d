"""A model larger than memory, counted, estimated and scored shard by shard: the whole model's
probabilities to the last bit, whatever the shards and the depth."""

import numpy as np
import pytest

from seqlm.core.errors import DataError
from seqlm.data.vocab import Vocab
from seqlm.ngram.counts import count_stream_ids
from seqlm.ngram.kneser_ney import KneserNeyModel
from seqlm.ngram.memory import TablesTooLarge
from seqlm.ngram.sharded import count_sharded
from seqlm.ngram.sharded_scoring import score_sharded
from seqlm.ngram.sharded_store import ShardedKneserNey, save_sharded
from seqlm.ngram.shards import lookup
from seqlm.ngram.store import load_ngram

V, BOS, ORDER = 12, 1, 5
VOCAB = Vocab(("<unk>", "<bos>", *"abcdefghij"), (0, 0, *range(10, 20)))
TEXT = {"clean": "none", "token": "char"}


def streams(seed=1):
    """A skewed train stream (some ids far more frequent: their shards are the large ones) and a
    held-out one with ids train never saw (``<unk>``, 0)."""
    rng = np.random.default_rng(seed)
    weights = np.arange(1, V - 1) ** 2
    train = rng.choice(np.arange(2, V), size=12_000, p=weights / weights.sum())
    held = rng.choice(np.arange(0, V), size=2_000)
    held[held == BOS] = 2
    return train, held


@pytest.fixture(scope="module")
def whole():
    train, held = streams()
    return train, held, count_stream_ids(train, V, ORDER, BOS)


def sharded(train, tmp_path, limit):
    """Counted in shards of ``limit`` entries, with chunks of 777 positions and runs of 256 pairs
    (so that every pass spills and merges)."""
    return count_sharded(train, V, ORDER, BOS, tmp_path, chunk=777, spill_bytes=4096, limit=limit)


@pytest.mark.parametrize("limit, depth", [(10**6, 1), (6_000, 1), (2_500, 2), (1_200, 2)])
def test_sharded_scores_are_the_whole_model_s_to_the_last_bit(tmp_path, whole, limit, depth):
    train, held, counts = whole
    got = sharded(train, tmp_path, limit)
    assert got.depth == depth
    assert len(got.files) > 1 or limit == 10**6
    assert got.rows == [counts.rows(k) for k in range(1, ORDER + 1)]
    orders = list(range(1, ORDER + 1))
    files, train_nll = score_sharded(got, orders, {"held": held, "head": held[:50]}, tmp_path, 300)
    for order in orders:
        model = KneserNeyModel(counts, order)
        assert np.array_equal(files[order, "held"].read(0, held.size), model.target_logprobs(held))
        assert np.array_equal(files[order, "head"].read(0, 50), model.target_logprobs(held[:50]))
        # the same terms summed in another order
        assert train_nll[order] == pytest.approx(model.training_stream_nll(), rel=1e-13)


@pytest.mark.parametrize("prune", [[0, 1], [0, 0, 1, 2]])
@pytest.mark.parametrize("limit", [10**6, 2_500])
def test_pruned_sharded_scores_are_the_pruned_whole_model_s(tmp_path, whole, limit, prune):
    train, held, counts = whole
    got = sharded(train, tmp_path, limit)
    orders = list(range(1, ORDER + 1))
    files, train_nll = score_sharded(got, orders, {"held": held}, tmp_path, 300, prune)
    for order in orders:
        model = KneserNeyModel(counts, order, prune=prune)
        assert np.array_equal(files[order, "held"].read(0, held.size), model.target_logprobs(held))
        assert (train_nll[order] is None) == (model.training_stream_nll() is None)


@pytest.mark.parametrize("order, prune", [(3, []), (5, []), (5, [0, 1]), (4, [0, 0, 0, 2])])
def test_a_saved_sharded_model_scores_and_predicts_as_the_whole_model(
    tmp_path, whole, order, prune
):
    train, held, counts = whole
    got = sharded(train, tmp_path, 2_500)
    path = save_sharded(got, order, VOCAB, TEXT, tmp_path / "model.npz", prune)
    model, vocab, text = load_ngram(path)
    assert isinstance(model, ShardedKneserNey) and (vocab, text) == (VOCAB, TEXT)
    reference = KneserNeyModel(counts, order, prune=prune)
    assert model.table_rows() == reference.table_rows()
    assert np.array_equal(model.target_logprobs(held), reference.target_logprobs(held))
    parts = np.concatenate(list(model.target_logprob_parts(held, 333, 100, 1_500)))
    assert np.array_equal(parts, reference.target_logprobs(held)[100:1_500])
    for context in ([], [BOS], [BOS, 3], [4, 5, 6, 7], [2] * 6, [0, 0, 0], [11, 0], [11, 11]):
        assert np.array_equal(model.distribution(context), reference.distribution(context))
    with pytest.raises(DataError, match="sharded n-gram model"):
        model.sequence_logprobs([np.array([BOS, 2, 3])])


def test_the_same_counts_give_the_same_file(tmp_path, whole):
    train = whole[0]
    first = save_sharded(sharded(train, tmp_path / "a", 2_500), 4, VOCAB, TEXT, tmp_path / "a.npz")
    again = save_sharded(sharded(train, tmp_path / "b", 2_500), 4, VOCAB, TEXT, tmp_path / "b.npz")
    assert first.read_bytes() == again.read_bytes()


def test_a_limit_no_depth_can_meet_is_refused_with_what_to_do(tmp_path, whole):
    with pytest.raises(TablesTooLarge, match="raise ngram.memory_mb or lower ngram.max_order"):
        sharded(whole[0], tmp_path, 300)


def test_lookup_finds_present_keys_and_marks_absent_ones():
    keys = np.array([2, 5, 9])
    assert lookup(keys, np.array([9, 2, 3, 10, 5])).tolist() == [2, 0, -1, -1, 1]
    assert lookup(keys[:0], np.array([1])).tolist() == [-1]


def test_a_stream_shorter_than_the_order_leaves_its_training_score_to_a_pass(tmp_path):
    train, held = np.array([2, 3, 4]), np.array([2, 3, 4, 2, 3, 5])
    got = sharded(train, tmp_path, 10**6)
    files, nll = score_sharded(got, [2, 5], {"train": train, "held": held}, tmp_path, 300)
    counts = count_stream_ids(train, V, ORDER, BOS)
    reference = KneserNeyModel(counts, 2).training_stream_nll()
    assert nll[5] is None and nll[2] == pytest.approx(reference, rel=1e-13)
    for order in (2, 5):  # no 5-gram fits in the stream: the higher orders add nothing
        expected = KneserNeyModel(counts, order).target_logprobs(held)
        assert np.array_equal(files[order, "held"].read(0, held.size), expected)


def test_counting_in_shards_leaves_only_the_shards_files(tmp_path, whole):
    got = sharded(whole[0], tmp_path, 2_500)  # some shards fail and are cut, depth 1 fails too
    assert got.depth == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in got.files)


def test_the_n_grams_already_counted_size_the_first_shards(tmp_path, whole):
    train, held, counts = whole
    rows = [counts.rows(k) for k in range(1, ORDER + 1)]
    alone = count_sharded(train, V, ORDER, BOS, tmp_path / "a", 777, 4096, 30_000)
    told = count_sharded(train, V, ORDER, BOS, tmp_path / "b", 777, 4096, 30_000, known=rows)
    # 4 x the n-grams above the depth over the limit: cut from the start, where 1 would do
    assert len(alone.files) == 1 < len(told.files)
    files, _ = score_sharded(told, [ORDER], {"held": held}, tmp_path, 300)
    expected = KneserNeyModel(counts, ORDER).target_logprobs(held)
    assert np.array_equal(files[ORDER, "held"].read(0, held.size), expected)
