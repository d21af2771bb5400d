"""Sorted runs on disk merged as a stream (seqlm.ngram.runs)."""

import numpy as np
import pytest

from seqlm.ngram.runs import SpillTable, merge_counts, merge_runs, merged_table


def reference(keys_list):
    keys = np.concatenate(keys_list)
    uniq, counts = np.unique(keys, return_counts=True)
    return uniq, counts


@pytest.mark.parametrize("seed", range(8))
def test_a_spilling_table_merges_to_the_counts_of_everything_added(seed, tmp_path):
    rng = np.random.default_rng(seed)
    chunks = [rng.integers(0, int(rng.integers(5, 5000)), size=int(rng.integers(0, 800)))
              for _ in range(int(rng.integers(1, 12)))]  # fmt: skip
    table = SpillTable(tmp_path, budget=int(rng.integers(16, 4000)))
    for chunk in chunks:
        table.add(chunk)
    runs = table.finish()
    expected = reference(chunks)
    block = int(rng.integers(1, 50))
    streamed = list(merge_runs(runs, block))
    keys = np.concatenate([k for k, _ in streamed]) if streamed else np.zeros(0, np.int64)
    assert np.all(np.diff(keys) > 0)  # every block sorted, blocks in order, no key twice
    got = merged_table(runs, tmp_path, block)
    assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert not list(tmp_path.glob("*"))  # runs and the merged file removed


def test_runs_written_apart_merge_into_one_table(tmp_path):
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 100, 500), rng.integers(50, 150, 500)
    tables = [SpillTable(tmp_path, budget=160), SpillTable(tmp_path, budget=10**6)]
    for piece in np.array_split(a, 5):
        tables[0].add(piece)
    tables[1].add(b)
    runs = tables[0].finish() + tables[1].finish()
    assert len(runs) == 6
    keys, counts = merged_table(runs, tmp_path, block=7)
    expected = reference([a, b])
    assert np.array_equal(keys, expected[0]) and np.array_equal(counts, expected[1])


def test_merge_counts_sums_equal_keys():
    keys, counts = merge_counts(np.array([5, 1, 5, 3]), np.array([1, 2, 3, 4]))
    assert keys.tolist() == [1, 3, 5] and counts.tolist() == [2, 4, 4]
