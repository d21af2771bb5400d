"""Token-id files: each split's stream of ids as a compact ``.npy``, written in chunks, read mapped.

The dtype is the smallest unsigned one that holds every id of the vocabulary (:func:`id_dtype`):
``uint8`` up to 256 entries, ``uint16`` up to 65,536, else ``uint32``; a 44M-character corpus is then
44 MB on disk and is never loaded whole: :func:`read_ids` maps the file (``mmap_mode="r"``), so a
reader touches only the pages it uses, and :func:`read_range` reads a slice of a mapped split with
a file read instead, so that a pass over a long split never has its pages count as its memory.
Code that does arithmetic on ids casts them to ``int64`` first (an unsigned id minus one wraps
around).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from seqlm.core.errors import DataError

ID_DTYPES = (np.uint8, np.uint16, np.uint32)


def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype holding the ids ``0 .. vocab_size − 1``."""
    if vocab_size < 1:
        raise DataError(f"a vocabulary of {vocab_size} entries holds no ids")
    for dt in ID_DTYPES:
        if vocab_size - 1 <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise DataError(f"a vocabulary of {vocab_size} entries is too large for 32-bit ids")


def write_ids(
    path: str | os.PathLike[str], chunks: Iterable[np.ndarray], total: int, dtype: np.dtype
) -> None:
    """Write ``total`` ids, given in consecutive chunks, as one ``.npy`` of ``dtype``, atomically.

    Only one chunk is held in memory at a time; the chunks must add up to exactly ``total`` ids."""
    from seqlm.core.atomic import atomic_path

    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
              "shape": (total,)}  # fmt: skip
    with atomic_path(path) as tmp, open(tmp, "wb") as out:  # written, not mapped: no page held
        np.lib.format.write_array_header_1_0(out, header)  # the header np.save writes
        at = 0
        for chunk in chunks:
            if at + chunk.size > total:
                raise DataError(f"{path}: more than the {total} ids announced")
            out.write(np.ascontiguousarray(chunk, dtype=dtype).tobytes())
            at += chunk.size
        if at != total:
            raise DataError(f"{path}: {at} ids written, {total} announced")


def read_ids(path: str | os.PathLike[str]) -> np.ndarray:
    """A split's ids, memory-mapped read-only (a 1-d array of an unsigned dtype)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"token-id file {str(p)!r} does not exist: run the corpus stage")
    ids = np.load(p, mmap_mode="r", allow_pickle=False)
    if ids.ndim != 1 or ids.dtype.kind not in "ui":
        raise DataError(f"{p}: expected a 1-d array of integer ids, got {ids.dtype} {ids.shape}")
    return ids


def read_range(ids: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``ids[start:stop]`` as a new ``int64`` array. From a split mapped by :func:`read_ids`, by a
    read of its file: the mapped pages a slice would touch stay out of the process's resident
    memory (a pass over a gigabyte split would otherwise hold all of it as it goes)."""
    stop = min(stop, ids.size)
    if stop <= start:
        return np.zeros(0, dtype=np.int64)
    whole_file = isinstance(ids, np.memmap) and isinstance(ids.base, mmap.mmap)
    if whole_file and ids.filename is not None and ids.ndim == 1:  # not a view of one
        offset = ids.offset + start * ids.dtype.itemsize
        got = np.fromfile(ids.filename, dtype=ids.dtype, count=stop - start, offset=offset)
        return got.astype(np.int64)
    return np.asarray(ids[start:stop], dtype=np.int64)
