"""Atomic writes: an output appears complete or not at all.

Every artifact seqlm writes goes through :func:`atomic_path`: the data is written to a temporary file
beside the target and renamed over it only once it is complete, so an interrupted or failed stage never
leaves a half-written output for DVC (or a user) to pick up.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give outputs the usual permissions
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text with ``\\n`` line endings, atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON (stable diffs), atomically."""
    write_text(target, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_npy(target: str | os.PathLike[str], array: np.ndarray) -> None:
    """Save one array as ``.npy``, atomically."""
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)


def remove_outputs(*paths: str | os.PathLike[str]) -> None:
    """Delete stale outputs so that a failed stage leaves nothing behind."""
    for p in paths:
        Path(p).unlink(missing_ok=True)
