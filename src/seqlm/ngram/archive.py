"""The n-gram model file's archive: numpy's ``.npz`` with fixed entry dates (the same arrays give
the same bytes), its format number and its ``meta`` record (:mod:`seqlm.ngram.store`,
:mod:`seqlm.ngram.sharded_store`)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from seqlm.core.errors import DataError
from seqlm.data.vocab import Vocab, parse_vocab
from seqlm.ngram.counts import NgramCounts

FORMAT = 1
TABLES = ("keys", "suffix", "raw", "starts_with_bos")


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """What ``np.savez`` writes, with fixed dates on the zip entries (``np.savez`` stamps the
    time of writing), so the same arrays always give the same bytes."""
    buffer = io.BytesIO()
    write_npz(buffer, arrays.items())
    return buffer.getvalue()


def write_npz(file: Any, arrays: Iterable[tuple[str, np.ndarray]]) -> None:
    """:func:`npz_bytes`'s archive written to ``file`` (a path or a binary file) one array at a
    time, as ``arrays`` gives them: only the array being written is held."""
    with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays:
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)


def read_meta(archive: Any, name: str) -> dict[str, Any]:
    """The archive's ``meta`` record, checked."""
    if "meta" not in archive.files:
        raise DataError(f"{name} is not a seqlm n-gram model (no 'meta' record)")
    meta = json.loads(str(archive["meta"][()]))
    if meta.get("format") != FORMAT:
        raise DataError(f"{name} is an n-gram model of format {meta.get('format')!r}, not {FORMAT}")
    return meta


def read_counts(
    archive: Any, meta: dict[str, Any], p: Path, order: int
) -> tuple[NgramCounts, Vocab]:
    """The count tables of orders ``1 .. order`` in an open archive and its vocabulary, checked."""
    try:
        tables = {
            name: tuple(archive[f"{name}_{k}"] for k in range(1, order + 1)) for name in TABLES
        }
    except KeyError as e:
        raise DataError(f"{str(p)!r} lacks the table {e} of its order {order}") from e
    vocab = parse_vocab(meta["vocab_tsv"], f"the vocabulary in {str(p)!r}")
    if len(vocab) != int(meta["vocab_size"]):
        raise DataError(f"{str(p)!r}: its vocabulary does not match its tables")
    counts = NgramCounts(
        vocab_size=int(meta["vocab_size"]),
        bos_id=int(meta["bos_id"]),
        max_order=order,
        sequences=int(meta["sequences"]),
        tokens=int(meta["tokens"]),
        **tables,
    )
    return counts, vocab
