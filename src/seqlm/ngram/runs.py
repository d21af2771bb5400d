"""Counting more distinct keys than fit in memory: sorted runs on disk, merged as a stream.

A :class:`SpillTable` counts int64 keys chunk by chunk like an in-memory table, but once its pending
``(key, count)`` pairs pass ``budget`` bytes it merges them (sorted unique keys, counts summed) and
writes them to a *run*: two flat files in its folder. :func:`merge_runs` reads every run a block at a
time and gives the merged table in key order, block by block, so the pairs of all runs are never in
memory together: what is held is one block per run and the block being merged. The merged table is
the same whatever the budget, the block size or the order the runs were written in (counts are
summed exactly), so runs written by several processes merge into one table.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import numpy as np

PAIR_BYTES = 16  # an int64 key and an int64 count
MERGE_BYTES = 1 << 26  # the blocks held while merging, all runs together
_names = count()


def merge_counts(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys with the counts of equal keys summed."""
    if keys.size == 0:
        return keys, counts
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.add.reduceat(counts[order], starts)


@dataclass(frozen=True)
class Run:
    """A sorted table of unique keys with counts, in two files of ``size`` int64 values each."""

    keys: Path
    counts: Path
    size: int

    @classmethod
    def write(cls, folder: Path, keys: np.ndarray, counts: np.ndarray) -> Run:
        stem = folder / f"run-{os.getpid()}-{next(_names)}"
        paths = stem.with_suffix(".keys"), stem.with_suffix(".counts")
        for path, values in zip(paths, (keys, counts), strict=True):
            np.ascontiguousarray(values, dtype=np.int64).tofile(path)
        return cls(*paths, int(keys.size))

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Pairs ``start .. stop`` (clipped to the run)."""
        stop = min(stop, self.size)
        n, offset = max(stop - start, 0), start * 8
        keys = np.fromfile(self.keys, dtype=np.int64, count=n, offset=offset)
        return keys, np.fromfile(self.counts, dtype=np.int64, count=n, offset=offset)

    def remove(self) -> None:
        self.keys.unlink(missing_ok=True)
        self.counts.unlink(missing_ok=True)


class SpillTable:
    """Sorted unique keys with counts, accumulated chunk by chunk; pending pairs over ``budget``
    bytes go to a run in ``folder`` (see the module docstring)."""

    def __init__(self, folder: Path | None, budget: int | None) -> None:
        """``budget`` None: never spill (no folder needed)."""
        self.folder, self.budget = folder, budget
        self.parts: list[tuple[np.ndarray, np.ndarray]] = []
        self.pending = 0  # pairs held in parts
        self.runs: list[Run] = []

    def add(self, keys: np.ndarray) -> None:
        """Count ``keys`` (any order, repeats allowed)."""
        uniq, counts = np.unique(keys, return_counts=True)
        self.add_counted(uniq, counts.astype(np.int64))

    def add_counted(self, keys: np.ndarray, counts: np.ndarray) -> None:
        """Add ``counts[i]`` to ``keys[i]`` (keys unique)."""
        self.parts.append((keys, counts))
        self.pending += keys.size
        if self.budget is not None and self.pending * PAIR_BYTES > self.budget:
            self.spill()

    def held(self) -> tuple[np.ndarray, np.ndarray]:
        """The pending pairs merged (and no longer pending)."""
        if not self.parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        keys = np.concatenate([k for k, _ in self.parts])
        counts = np.concatenate([c for _, c in self.parts])
        self.parts, self.pending = [], 0
        return merge_counts(keys, counts)

    def spill(self) -> None:
        """Write the pending pairs to a run."""
        keys, counts = self.held()
        if keys.size:
            assert self.folder is not None
            self.runs.append(Run.write(self.folder, keys, counts))

    def finish(self) -> list[Run]:
        """Every pair counted, as runs (the table is empty after)."""
        self.spill()
        runs, self.runs = self.runs, []
        return runs


def merge_runs(runs: Sequence[Run], block: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The runs' pairs merged (sorted unique keys, counts summed), a block at a time.

    Each step merges every pair whose key is at most the smallest *last key read* among the runs
    that still have pairs on disk: no later block can hold a smaller key."""
    held = [run.read(0, block) for run in runs]
    read = [h[0].size for h in held]
    while any(h[0].size for h in held):
        open_runs = [i for i, run in enumerate(runs) if read[i] < run.size]
        bound = min((int(held[i][0][-1]) for i in open_runs), default=None)
        keys, counts = [], []
        for i, (k, c) in enumerate(held):
            take = k.size if bound is None else int(np.searchsorted(k, bound, side="right"))
            keys.append(k[:take])
            counts.append(c[:take])
            held[i] = (k[take:], c[take:])
            if held[i][0].size == 0 and read[i] < runs[i].size:
                held[i] = runs[i].read(read[i], read[i] + block)
                read[i] += held[i][0].size
        yield merge_counts(np.concatenate(keys), np.concatenate(counts))


class TableTooLarge(Exception):
    """A merged table has more keys than its caller can hold (``size``)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the merged table has {size:,} keys")
        self.size = size


def merged_table(
    runs: Sequence[Run], folder: Path, block: int | None = None, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The runs merged into one table in memory (the runs are removed): merged to a file first,
    so that only the result and one block per run (``block`` pairs; by default
    :data:`MERGE_BYTES` over them all) are ever held. ``limit``: the most keys the table may have;
    beyond it :class:`TableTooLarge` is raised before the table is read (the runs are gone)."""
    if block is None:
        block = max(1 << 12, MERGE_BYTES // (PAIR_BYTES * max(len(runs), 1)))
    if not runs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if len(runs) == 1:
        size = runs[0].size
        if limit is None or size <= limit:
            keys, counts = runs[0].read(0, size)
        runs[0].remove()
        if limit is not None and size > limit:
            raise TableTooLarge(size)
        return keys, counts
    stem = folder / f"merged-{os.getpid()}-{next(_names)}"
    out = Run(stem.with_suffix(".keys"), stem.with_suffix(".counts"), 0)
    size = 0
    with open(out.keys, "wb") as fk, open(out.counts, "wb") as fc:
        for k, c in merge_runs(runs, block):
            k.tofile(fk)
            c.tofile(fc)
            size += k.size
    for run in runs:
        run.remove()
    if limit is not None and size > limit:
        out.remove()
        raise TableTooLarge(size)
    keys, counts = Run(out.keys, out.counts, size).read(0, size)
    out.remove()
    return keys, counts
