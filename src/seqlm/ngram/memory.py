"""The n-gram stage's memory cap, ``ngram.memory_mb``, divided among what the stage holds.

The stage's memory is a fixed part — the Python process with its imports, :data:`BASE_MB` — and
what it works with. Of the work memory, a third may go to the model's own tables (every counted
n-gram's key, suffix, count and, while Kneser-Ney is estimated, its adjusted count, probability and
back-off: :data:`BYTES_PER_NGRAM` an n-gram); the rest is the passes' working sets, sized from the
cap instead of fixed, in equal parts for each counting process and the main one:

* each counting process: its chunk of positions, the pending pairs it holds before spilling a sorted
  run, the table of every key when an order's key space is small enough to count densely;
* the counting pass's table of every key's row (one, shared by the processes it forks);
* merging the runs: a block per run;
* scoring: the chunk of targets each process scores, and the tables of every key's row that speed
  up lookups (one per order).

None of these changes a figure: the tables, probabilities and scores are the same floats whatever
the cap (counting and scoring do not depend on their chunks, spill budget or dense tables). The
token stream itself is read by file reads (:func:`seqlm.data.ids.read_range`), so a long split's
pages never count as the stage's memory. The one part that grows with the corpus is the model's
tables: counting checks them against their third after every order and stops with what the order
needs (:func:`check_tables`, :class:`TablesTooLarge`) instead of being killed for want of memory;
the stage then counts the same model in shards that each fit the third
(:mod:`seqlm.ngram.baseline_sharded`). The n-gram's dynamic
evaluation (:mod:`seqlm.ngram.dynamic`) comes after counting, when the passes' two thirds are free
again: refitting holds the tables about twice over (Tiny Shakespeare's 4.69 M n-grams of orders
1..12: a peak resident set of 878 MiB, about 160 bytes an n-gram beyond the process), within the 3 ×
:data:`BYTES_PER_NGRAM` of work memory an n-gram the tables' third implies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from seqlm.core.errors import DataError, ParamError

MB = 1 << 20
BASE_MB = 160  # the stage's process before it counts: Python, numpy and the imports
BYTES_PER_NGRAM = 96  # the tables' and Kneser-Ney's arrays for one n-gram, at estimation's peak
MIN_WORK_MB = 32  # the least work memory the passes are given


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def minimum_mb(vocab_size: int) -> int:
    """The least ``ngram.memory_mb`` a vocabulary of ``vocab_size`` can be counted in: the fixed
    part, the passes' least work memory and the unigram tables three times over (they are in the
    tables' third)."""
    return BASE_MB + MIN_WORK_MB + math.ceil(3 * vocab_size * BYTES_PER_NGRAM / MB)


@dataclass(frozen=True)
class MemoryPlan:
    """How ``memory_mb`` is shared for a run of ``workers`` processes up to ``max_order``."""

    memory_mb: int
    workers: int = 1
    max_order: int = 1

    @property
    def work_bytes(self) -> int:
        """What the cap leaves beyond the fixed part."""
        return max(self.memory_mb - BASE_MB, MIN_WORK_MB) * MB

    @property
    def table_bytes(self) -> int:
        """The model's tables may take a third of the work memory."""
        return self.work_bytes // 3

    @property
    def part(self) -> int:
        """The passes' two thirds, shared among the counting processes and the main one."""
        return (self.work_bytes - self.table_bytes) // (max(self.workers, 1) + 1)

    @property
    def chunk(self) -> int:
        """Positions a counting process takes at a time: an eighth of its part, at about 128
        bytes of arrays a position."""
        return _clamp(self.part // (8 * 128), 1 << 14, 1 << 21)

    @property
    def spill_bytes(self) -> int:
        """Pending pairs a counting process holds before it writes a run: sorting them takes
        about three times as much, within three quarters of its part."""
        return max(self.part // 4, 1 << 16)

    @property
    def dense_limit(self) -> int:
        """The largest key space a counting process counts with a table of every key (8 bytes a
        key, in the three quarters of its part it would otherwise spill from)."""
        return self.part * 3 // (4 * 8)

    @property
    def rank_limit(self) -> int:
        """The largest key space a counting pass indexes with a table of every key's row (4 bytes
        a key, in half the main process's part; the processes it forks share it)."""
        return self.part // (2 * 4)

    @property
    def merge_bytes(self) -> int:
        """The blocks merging holds, every run together: a quarter of the main part."""
        return max(self.part // 4, 1 << 16)

    @property
    def lookup_limit(self) -> int:
        """The largest key space scoring looks up through a table of every key's row: one per
        order, 4 bytes a key, all orders in a quarter of the main part."""
        return self.part // (4 * 4 * max(self.max_order, 1))

    @property
    def score_chunk(self) -> int:
        """Targets a scoring process takes at a time (about 48 bytes an order a target, in half
        its part)."""
        return _clamp(self.part // (2 * 48 * max(self.max_order, 1)), 1 << 12, 1 << 20)


def check_cap(memory_mb: int, vocab_size: int) -> None:
    """Refuse a cap below :func:`minimum_mb`, naming the minimum."""
    need = minimum_mb(vocab_size)
    if memory_mb < need:
        raise ParamError(
            f"ngram.memory_mb = {memory_mb} is below what a vocabulary of {vocab_size} needs: "
            f"at least {need} MB ({BASE_MB} MB for the process, {MIN_WORK_MB} MB for the passes "
            f"and the tables)"
        )


class TablesTooLarge(DataError):
    """The model's tables would take more than their third of ``ngram.memory_mb`` (``summary``:
    how many n-grams, needing what, against what; empty when not known)."""

    def __init__(self, message: str, summary: str = "", rows: list[int] | None = None) -> None:
        """``rows``: the n-grams of each order counted when the tables passed their share."""
        super().__init__(message)
        self.summary, self.rows = summary, list(rows or [])


def check_tables(plan: MemoryPlan, rows: list[int]) -> None:
    """Stop when the n-grams counted so far (``rows[k − 1]`` of order ``k``) need more than the
    tables' third of the cap: the model could not be estimated in it."""
    held = sum(rows) * BYTES_PER_NGRAM
    if held <= plan.table_bytes:
        return
    need = BASE_MB + math.ceil(3 * held / MB)
    summary = (
        f"its {sum(rows):,} distinct n-grams of orders 1..{len(rows)} need about "
        f"{math.ceil(held / MB)} MB of tables, more than a third of the "
        f"{plan.work_bytes // MB} MB the cap leaves beyond the process"
    )
    raise TablesTooLarge(
        f"ngram.memory_mb = {plan.memory_mb} is too small for this corpus: {summary}; raise "
        f"ngram.memory_mb to at least {need} or lower ngram.max_order (ngram.order)",
        summary,
        rows,
    )
