"""The train / val / test split: contiguous blocks of lines, by line index, or the published files.

This module owns the split. A corpus published pre-split (PTB, WikiText) keeps its own files: each is
its split (:func:`check_blocks`). A one-file corpus is cut into three contiguous blocks by line
index (:func:`split_by_line`; :func:`line_bounds` gives the blocks from the number of lines alone,
so a long file can be split as it is read: :func:`seqlm.data.corpus.split_ranges`). It runs on
cleaned lines before any counting or tokenization, so every tokenization sees exactly the same text
in each split, and the vocabulary can be built from the train block alone.
"""

from __future__ import annotations

import math

from seqlm.core.errors import DataError, ParamError

SPLITS = ("train", "val", "test")


def check_fractions(train: float, val: float, test: float) -> None:
    """Fractions must each be in (0, 1) and sum to 1."""
    for name, f in zip(SPLITS, (train, val, test)):
        if not 0.0 < f < 1.0:
            raise ParamError(f"tokenize.{name}_fraction = {f} must be strictly between 0 and 1")
    total = train + val + test
    if not math.isclose(total, 1.0, abs_tol=1e-9):
        raise ParamError(
            f"tokenize split fractions must sum to 1, got {train} + {val} + {test} = {total}"
        )


def split_by_line(lines: list[str], train: float, val: float, test: float) -> dict[str, list[str]]:
    """Cut ``lines`` into three contiguous blocks: [0, b1), [b1, b2), [b2, n).

    ``b1 = round(n * train)`` and ``b2 = round(n * (train + val))``. Every block must hold at least one
    non-empty line, or the split is refused (a corpus too small for these fractions).
    """
    bounds = line_bounds(len(lines), train, val, test)
    blocks = {name: lines[lo:hi] for name, (lo, hi) in bounds.items()}
    for name, (lo, hi) in bounds.items():
        if not any(blocks[name]):
            raise no_text(name, lo, hi, len(lines), (train, val, test))
    return blocks


def line_bounds(n: int, train: float, val: float, test: float) -> dict[str, tuple[int, int]]:
    """The three blocks ``[lo, hi)`` of ``n`` lines (see :func:`split_by_line`)."""
    check_fractions(train, val, test)
    b1 = round(n * train)
    b2 = round(n * (train + val))
    return {"train": (0, b1), "val": (b1, b2), "test": (b2, n)}


def no_text(name: str, lo: int, hi: int, n: int, fractions: tuple[float, ...]) -> DataError:
    """The error of a block with no text."""
    return DataError(
        f"the {name} split (lines {lo}..{hi} of {n}) has no text: the corpus has too few "
        f"lines for fractions {'/'.join(map(str, fractions))}"
    )


def check_blocks(blocks: dict[str, list[str]]) -> None:
    """A pre-split corpus: each of train, val and test must hold at least one non-empty line."""
    for name in SPLITS:
        if not any(line.strip() for line in blocks.get(name, [])):
            raise DataError(f"the {name} file of the corpus has no text")
