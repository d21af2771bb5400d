"""A sharded Kneser-Ney model (:mod:`seqlm.ngram.sharded`) as one file, and the model read back.

``model.npz`` as :mod:`seqlm.ngram.store` writes it, with ``meta["shards"]`` the number of shards,
``meta["depth"]`` the bottom's order ``j`` and ``meta["rows"]`` each order's distinct n-grams. The
bottom is stored as a pruned model's tables are (``keys_k``, ``suffix_k``, ``raw_k``,
``starts_with_bos_k``, ``complete_k`` and ``backoff_k`` for ``k <= j``), ``starts`` holds each
shard's first bottom row, and shard ``i`` its tables and estimates: ``shard<i>.contexts_<m>``,
``.grams_<k>``, ``.raw_<k>``, ``.first_bos``, ``.low_suffix``, ``.complete_<k>`` and
``.gamma_<k>``. It is written a shard at a time and read a shard at a time
(:class:`ShardedKneserNey` holds the bottom and the last shard it used), so neither needs the
whole model in memory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from seqlm.core.atomic import atomic_path
from seqlm.core.errors import DataError
from seqlm.core.logs import progress_disabled
from seqlm.data.vocab import Vocab
from seqlm.ngram.archive import FORMAT, TABLES, read_counts, write_npz
from seqlm.ngram.counts import stream_reader
from seqlm.ngram.kneser_ney import KneserNeyModel
from seqlm.ngram.model import NgramModel
from seqlm.ngram.sharded import ShardedCounts, ShardModel, as_whole_rows, unpruned_rows
from seqlm.ngram.shards import Shard


def shard_entries(
    counts: ShardedCounts, order: int, meta: dict[str, Any], prune: Sequence[int] = ()
) -> Iterator[tuple[str, np.ndarray]]:
    """The archive's arrays of the model of ``order`` pruned with ``prune``, each shard estimated
    as it is reached, and last ``meta`` with each order's n-grams kept (``meta["rows"]``)."""
    bottom, j = counts.bottom_model(order, prune), counts.depth
    for k in range(1, j + 1):
        for name in TABLES:
            yield f"{name}_{k}", getattr(bottom.counts, name)[k - 1]
        yield f"complete_{k}", bottom.complete[k - 1]
        if k < j:
            yield f"backoff_{k}", bottom.backoff[k - 1]
    rows = [bottom.counts.rows(k) for k in range(1, j + 1)] + [0] * (order - j)
    whole = unpruned_rows(bottom)
    if whole is not None:
        yield "whole_rows", whole
    yield "starts", np.asarray(counts.starts, dtype=np.int64)
    discounts = counts.discounts(order)
    bar = tqdm(counts.shards(), total=len(counts.files), desc="ngram saving", unit="shard",
               disable=progress_disabled())  # fmt: skip
    for i, shard in enumerate(bar):
        model = ShardModel.estimate(shard.upto(order), order, discounts, bottom, prune)
        arrays = model.shard.arrays()
        for k in range(j + 1, order + 1):
            arrays[f"complete_{k}"] = model.complete[k - j - 1]
            arrays[f"gamma_{k}"] = model.gamma[k - j - 1]
            rows[k - 1] += model.shard.grams[k - j - 1].size
        for name, array in arrays.items():
            yield f"shard{i}.{name}", array
    yield "meta", np.array(json.dumps({**meta, "rows": rows}, sort_keys=True))


def save_sharded(
    counts: ShardedCounts, order: int, vocab: Vocab, text: dict[str, str],
    path: str | os.PathLike[str], prune: Sequence[int] = (),
) -> Path:  # fmt: skip
    """Write the model of ``order`` (above the depth) of ``counts`` pruned with ``prune``, its
    vocabulary and text reading."""
    if len(vocab) != counts.vocab_size:
        raise DataError(f"the model has {counts.vocab_size} ids, the vocabulary {len(vocab)}")
    meta = {
        "format": FORMAT,
        "smoothing": "kneser_ney",
        "order": order,
        "laplace_alpha": 1.0,
        "vocab_size": counts.vocab_size,
        "bos_id": counts.bos_id,
        "sequences": counts.bottom.sequences,
        "tokens": counts.bottom.tokens,
        "vocab_tsv": vocab.to_tsv(),
        "text": dict(text),
        "shards": len(counts.files),
        "depth": counts.depth,
        **({"prune": list(prune)} if any(prune) else {}),
    }
    with atomic_path(path) as tmp:
        write_npz(tmp, shard_entries(counts, order, meta, prune))
    return Path(path)


class ShardedKneserNey(NgramModel):
    """A sharded model read from its file: scores streams and gives next-token distributions as
    :class:`~seqlm.ngram.kneser_ney.KneserNeyModel` does (the same floats), a shard at a time."""

    smoothing = "kneser_ney"

    def __init__(self, path: Path, meta: dict[str, Any], bottom: KneserNeyModel,
                 starts: np.ndarray, whole_rows: np.ndarray | None = None) -> None:  # fmt: skip
        """``whole_rows``: a pruned bottom's top-order rows as the shards number them."""
        super().__init__(bottom.counts, bottom.order, bottom.allowed)
        self.path, self.order, self.whole_rows = path, int(meta["order"]), whole_rows
        self.rows = [int(r) for r in meta["rows"]]
        self.bottom, self.starts, self.depth = bottom, starts, bottom.order
        self._held: tuple[int, ShardModel] | None = None

    def table_rows(self) -> list[int]:
        return list(self.rows)

    def shard_model(self, i: int) -> ShardModel:
        """Shard ``i`` with its estimates (read from the file unless it is the one held)."""
        if self._held is not None and self._held[0] == i:
            return self._held[1]
        held: dict[str, np.ndarray] = {}
        with np.load(self.path, allow_pickle=False) as archive:
            stem = f"shard{i}."
            for name in archive.files:
                if name.startswith(stem):
                    held[name[len(stem) :]] = archive[name]
        shard = Shard.of_arrays(held, self.vocab_size, self.bos_id)
        above = range(self.depth + 1, self.order + 1)
        model = ShardModel(
            shard,
            self.order,
            tuple(held[f"complete_{k}"] for k in above),
            tuple(held[f"gamma_{k}"] for k in above),
        )
        self._held = (i, model)
        return model

    def shard_of(self, rows: np.ndarray) -> np.ndarray:
        """The shard holding each bottom row (``rows >= 0``)."""
        return np.searchsorted(self.starts, rows, side="right") - 1

    def sequence_probabilities(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        return self.probabilities((), np.zeros(0), np.zeros(0))

    def probabilities(
        self, contexts: Sequence[np.ndarray], context_len: np.ndarray, words: np.ndarray
    ) -> np.ndarray:
        raise DataError(
            f"{str(self.path)!r} is a sharded n-gram model: it scores streams of ids and gives "
            f"next-token distributions, but not separate sentences"
        )

    def stream_chunk_probabilities(
        self, ids: np.ndarray, a: int, b: int, context_order: int = 0
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities of ``ids[a:b]`` within ``<bos> ids``: the bottom's, then shard by
        shard."""
        if context_order:
            raise DataError("a sharded model gives no context rows")
        p, rows_j = self.bottom.stream_chunk_probabilities(ids, a, b, self.depth)
        assert rows_j is not None
        ctx = as_whole_rows(rows_j, self.whole_rows)
        lo = max(a + 1 - self.order, 0)  # in the stream <bos> ids
        window = stream_reader(ids, self.bos_id)(lo, b + 1)
        shard = np.where(ctx >= 0, self.shard_of(ctx), -1)
        for i in np.unique(shard[shard >= 0]):
            mine = np.flatnonzero(shard == i)
            rows = ctx[mine] - int(self.starts[i])
            model = self.shard_model(int(i))
            p[mine] = model.probabilities(p[mine], rows, window, mine + a + 1, lo)
        return p, None

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        ctx = np.asarray(context, dtype=np.int64)[max(0, len(context) - (self.order - 1)) :]
        p = self.bottom.distribution(ctx)
        if ctx.size < self.depth:
            return p
        j = self.depth
        rows = self.counts.ending_rows(ctx[-j:], np.zeros(j, dtype=np.int64), j)[j - 1][-1:]
        row = int(as_whole_rows(rows, self.whole_rows)[0])
        if row < 0:
            return p
        i = int(self.shard_of(np.array([row]))[0])
        return self.shard_model(i).next_probabilities(p, row - int(self.starts[i]), ctx)


def load_sharded(
    p: Path, archive: Any, meta: dict[str, Any]
) -> tuple[ShardedKneserNey, Vocab, dict[str, str]]:
    """The model, vocabulary and text reading of a sharded model file (``archive`` open)."""
    j = int(meta["depth"])
    counts, vocab = read_counts(archive, meta, p, j)
    try:
        complete = [archive[f"complete_{k}"] for k in range(1, j + 1)]
        backoff = [archive[f"backoff_{k}"] for k in range(1, j)]
        starts = archive["starts"]
        whole_rows = archive["whole_rows"] if "whole_rows" in archive.files else None
    except KeyError as e:
        raise DataError(f"{str(p)!r} lacks the sharded model's array {e}") from e
    bottom = KneserNeyModel.restored(counts, j, complete, backoff, meta.get("prune", ()))
    model = ShardedKneserNey(p, meta, bottom, starts, whole_rows)
    return model, vocab, {k: str(v) for k, v in meta["text"].items()}
