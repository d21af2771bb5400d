"""ngram.memory_mb: the working sets sized from the cap change no figure; what cannot fit is refused."""

from dataclasses import dataclass

import numpy as np
import pytest

from seqlm.core.errors import DataError, ParamError
from seqlm.data.ids import read_ids, read_range, write_ids
from seqlm.ngram import fit_ngram, runs
from seqlm.ngram.counts import count_stream_ids
from seqlm.ngram.memory import (
    BASE_MB,
    BYTES_PER_NGRAM,
    MemoryPlan,
    TablesTooLarge,
    check_cap,
    check_tables,
    minimum_mb,
)

FIELDS = ("keys", "suffix", "raw", "starts_with_bos")


@dataclass(frozen=True)
class TinyPlan(MemoryPlan):
    """Working sets far below any real cap: chunks of 97 positions, a run every 40 pending pairs,
    blocks of 16 pairs, no dense tables, 50 targets scored at a time."""

    @property
    def chunk(self) -> int:
        return 97

    @property
    def spill_bytes(self) -> int:
        return 16 * 40

    @property
    def merge_bytes(self) -> int:
        return 16 * 16

    @property
    def dense_limit(self) -> int:
        return 0

    @property
    def rank_limit(self) -> int:
        return 0

    @property
    def lookup_limit(self) -> int:
        return 0


def mapped_stream(tmp_path, size=6000, vocab=12, seed=3):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, size=size) * (rng.random(size) < 0.97)
    path = tmp_path / "train.npy"
    write_ids(path, [ids], ids.size, np.dtype(np.uint8))
    return read_ids(path), ids


@pytest.mark.parametrize("workers", [1, 2])
def test_a_tiny_plan_gives_the_tables_and_logprobs_of_the_in_memory_path(tmp_path, workers):
    mapped, ids = mapped_stream(tmp_path)
    whole = count_stream_ids(ids, 13, 5, 12)  # one chunk: everything in memory
    plan = TinyPlan(10_000, workers, 5)
    spilled = count_stream_ids(mapped, 13, 5, 12, workers=workers, spill_dir=tmp_path, plan=plan)
    for field in FIELDS:
        for a, b in zip(getattr(whole, field), getattr(spilled, field), strict=True):
            assert np.array_equal(a, b), field
    assert spilled.lookup_limit == 0 and spilled.dense_ranks(3) is None
    held = np.random.default_rng(9).integers(1, 12, size=500)
    for order in (2, 5):
        a = fit_ngram(whole, order).target_logprobs(held)
        b = fit_ngram(spilled, order).target_logprobs(held, chunk=50)
        assert np.array_equal(a, b)  # to the last bit
    assert not list(tmp_path.glob(".seqlm-ngram-*"))  # the spill folder is gone


def test_a_corpus_whose_tables_outgrow_the_cap_is_stopped_with_what_it_needs(tmp_path):
    mapped, _ = mapped_stream(tmp_path)

    @dataclass(frozen=True)
    class SmallTables(TinyPlan):
        @property
        def table_bytes(self) -> int:
            return BYTES_PER_NGRAM * 2000  # 2,000 n-grams' worth

    with pytest.raises(DataError, match=r"ngram.memory_mb = 500 is too small.*at least \d+"):
        count_stream_ids(mapped, 13, 5, 12, spill_dir=tmp_path, plan=SmallTables(500, 1, 5))
    assert not list(tmp_path.glob(".seqlm-ngram-*"))


def test_check_tables_names_the_cap_and_the_memory_the_tables_need():
    plan = MemoryPlan(1000, 2, 7)
    check_tables(plan, [50, 2_000, 100_000])  # 8 MB of tables: well inside
    with pytest.raises(DataError) as err:
        check_tables(plan, [50, 2_000, 10_000_000])
    message = str(err.value)
    assert "ngram.memory_mb = 1000" in message and "10,002,050 distinct n-grams" in message
    need = int(message.split("at least ")[1].split()[0])
    check_tables(MemoryPlan(need, 2, 7), [50, 2_000, 10_000_000])  # what it names is enough


def test_a_cap_below_the_vocabulary_s_minimum_is_refused_with_the_minimum():
    need = minimum_mb(50_000)
    assert need > BASE_MB
    check_cap(need, 50_000)
    with pytest.raises(ParamError, match=rf"ngram.memory_mb = 100 .* at least {need} MB"):
        check_cap(100, 50_000)


def test_the_plan_shares_the_cap_among_processes_and_grows_with_it():
    small, large = MemoryPlan(512, 2, 7), MemoryPlan(4096, 2, 7)
    names = ("chunk", "spill_bytes", "dense_limit", "rank_limit", "merge_bytes", "lookup_limit",
             "score_chunk")  # fmt: skip
    for name in names:
        assert getattr(small, name) <= getattr(large, name), name
    assert 0 < small.part < MemoryPlan(512, 1, 7).part
    counting = small.chunk * 128 + max(small.spill_bytes * 3, small.dense_limit * 8)
    assert counting <= small.part  # a counting process within its part
    main = small.rank_limit * 4 + small.merge_bytes + small.lookup_limit * 4 * 7
    assert main <= small.part
    assert 3 * small.part + small.table_bytes <= (512 - BASE_MB) << 20


def test_read_range_reads_a_mapped_split_by_file_reads_and_anything_else_by_slicing(tmp_path):
    mapped, ids = mapped_stream(tmp_path, size=1000)
    for a, b in ((0, 10), (990, 1005), (400, 400), (5, 1000)):
        got = read_range(mapped, a, b)
        assert got.dtype == np.int64 and np.array_equal(got, ids[a:b])
        assert np.array_equal(read_range(ids, a, b), ids[a:b])
        assert np.array_equal(read_range(mapped[3:], a, b), ids[3:][a:b])  # a view: sliced


def test_an_order_too_large_for_the_tables_is_refused_before_it_is_read(tmp_path, monkeypatch):
    mapped, ids = mapped_stream(tmp_path)
    whole = count_stream_ids(ids, 13, 5, 12)

    @dataclass(frozen=True)
    class SmallTables(TinyPlan):
        @property
        def table_bytes(self) -> int:
            return BYTES_PER_NGRAM * 2000  # orders 1..3 fit, order 4 does not

    merged_reads: list[int] = []
    real = runs.Run.read

    def spied(self, start, stop):
        got = real(self, start, stop)
        if self.keys.name.startswith("merged-"):
            merged_reads.append(got[0].size)
        return got

    monkeypatch.setattr(runs.Run, "read", spied)
    with pytest.raises(TablesTooLarge, match=r"ngram.memory_mb = 500 is too small") as err:
        count_stream_ids(mapped, 13, 5, 12, spill_dir=tmp_path, plan=SmallTables(500, 1, 5))
    assert sum(whole.rows(k) for k in (1, 2, 3)) <= 2000 < sum(whole.rows(k) for k in (1, 2, 3, 4))
    assert f"its {sum(whole.rows(k) for k in (1, 2, 3, 4)):,} distinct n-grams" in err.value.summary
    assert whole.rows(3) in merged_reads and whole.rows(4) not in merged_reads  # never read
    assert not list(tmp_path.glob(".seqlm-ngram-*"))
