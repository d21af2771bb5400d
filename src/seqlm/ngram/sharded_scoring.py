"""Scoring splits with a sharded model as the stage counted it (:mod:`seqlm.ngram.sharded`): the
bottom scores every target's lower orders, then each shard the targets whose context's last
``depth`` tokens it holds, for every model order of the search, into a file per split and order
(:class:`ScoreFile`) filled by positions. What is held is the bottom, one shard and one chunk of
targets."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from seqlm.core.logs import progress_disabled
from seqlm.ngram.counting import chunks
from seqlm.ngram.counts import stream_reader
from seqlm.ngram.kneser_ney import KneserNeyModel
from seqlm.ngram.pruning import thresholds
from seqlm.ngram.sharded import (
    ShardedCounts,
    ShardModel,
    as_whole_rows,
    bottom_training_nll,
    unpruned_rows,
)


class ScoreFile:
    """A split's log-probabilities by position, in a flat file filled shard by shard."""

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size = path, size
        with open(path, "wb") as f:
            f.truncate(size * 8)

    def put(self, start: int, at: np.ndarray, values: np.ndarray) -> None:
        """Targets ``at`` (split positions from ``start``, in order) take ``values``."""
        if at.size == 0:
            return
        stop = int(at[-1]) + 1
        block = self.read(start, stop)
        block[at - start] = values
        with open(self.path, "r+b") as f:
            f.seek(start * 8)
            f.write(block.tobytes())

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.fromfile(self.path, dtype=np.float64, count=stop - start, offset=start * 8)

    def parts(self, chunk: int) -> Iterator[np.ndarray]:
        for a, b in chunks(self.size, chunk):
            yield self.read(a, b)


def score_sharded(
    counts: ShardedCounts, orders: Sequence[int], splits: dict[str, np.ndarray], folder: Path,
    chunk: int, prune: Sequence[int] = (),
) -> tuple[dict[tuple[int, str], ScoreFile], dict[int, float | None]]:  # fmt: skip
    """Every split's log-probabilities under the model of each of ``orders`` pruned with
    ``prune`` (files in ``folder``), and each order's training negative log-likelihood (None when
    the tables do not give it: a pruned model, a stream shorter than the order); ``chunk``
    targets at a time."""
    files = {
        (n, name): ScoreFile(folder / f"scores-{n}-{name}.f64", int(ids.size))
        for n in orders
        for name, ids in splits.items()
    }
    train: dict[int, float | None] = {}
    above = [n for n in orders if n > counts.depth]
    bottoms = {n: counts.bottom_model(n, prune) for n in orders}
    for n in orders:
        if n <= counts.depth:  # the bottom is the whole model
            train[n] = bottoms[n].training_stream_nll()
        elif counts.bottom.tokens >= n and not any(thresholds(prune, n)):
            train[n] = bottom_training_nll(bottoms[n], n)
        else:  # no top-order n-gram: not from the tables
            train[n] = None
    bar = tqdm(total=len(counts.files) * bool(above), desc="ngram estimating and scoring",
               unit="shard", disable=progress_disabled())  # fmt: skip
    for name, ids in tqdm(splits.items(), desc="ngram scoring below the shards", unit="split",
                          disable=progress_disabled()):  # fmt: skip
        for n in orders:  # the targets no shard holds (every target at or below the depth)
            whole = n <= counts.depth
            score_split(bottoms[n], None, ids, (-1, 0), files[n, name], chunk, whole)
    discounts = {n: counts.discounts(n) for n in above}  # the same for every shard
    ends = [*counts.starts[1:], counts.bottom.rows(counts.depth)]
    for s, shard in enumerate(counts.shards() if above else ()):
        rows = (counts.starts[s], ends[s])
        for n in above:
            model = ShardModel.estimate(shard.upto(n), n, discounts[n], bottoms[n], prune)
            part = train[n]
            train[n] = None if part is None else part + model.training_nll()
            for name, ids in splits.items():
                score_split(bottoms[n], model, ids, rows, files[n, name], chunk)
        bar.update()
    bar.close()
    return files, train


def score_split(
    bottom: KneserNeyModel, model: ShardModel | None, ids: np.ndarray, rows: tuple[int, int],
    out: ScoreFile, chunk: int, whole: bool = False,
) -> None:  # fmt: skip
    """The targets of a split (``<bos> ids``) whose context's last ``depth`` tokens are the bottom
    rows ``rows`` (``lo .. hi``), scored into ``out``; with no shard model, those no shard holds
    (``whole``: every target, the bottom being the whole model)."""
    read, j = stream_reader(ids, bottom.bos_id), bottom.counts.max_order
    full = unpruned_rows(bottom)
    for a, b in chunks(int(ids.size), chunk):
        p, rows_j = bottom.stream_chunk_probabilities(ids, a, b, j)
        assert rows_j is not None
        ctx = as_whole_rows(rows_j, full)
        if model is None:
            mine = np.arange(b - a) if whole else np.flatnonzero(ctx < 0)
            p_mine = p[mine]
        else:
            mine = np.flatnonzero((ctx >= rows[0]) & (ctx < rows[1]))
            lo = max(a + 1 - model.order, 0)
            window = read(lo, b + 1)
            t = mine + a + 1  # stream positions
            p_mine = model.probabilities(p[mine], ctx[mine] - rows[0], window, t, lo)
        with np.errstate(divide="ignore"):
            out.put(a, mine + a, np.log(p_mine))
