"""Clean raw text into lines of lower-case letters and single spaces (the textbook's rule).

Each input line becomes ``re.sub('[^A-Za-z]+', ' ', line).strip().lower()``. Empty results are kept,
so that line ``i`` of the cleaned file is line ``i`` of the source and the split by line index is the
same whatever the tokenization.
"""

from __future__ import annotations

import re

from seqlm.core.errors import DataError
from seqlm.params import CleanParams

NON_LETTERS = re.compile("[^A-Za-z]+")
GUTENBERG_START = re.compile(r"^\s*\*\*\*\s*START OF", re.IGNORECASE)
GUTENBERG_END = re.compile(r"^\s*\*\*\*\s*END OF", re.IGNORECASE)


def decode(raw: bytes) -> str:
    """Decode corpus bytes: UTF-8 (a BOM is dropped); invalid bytes become U+FFFD, later removed."""
    return raw.decode("utf-8-sig", errors="replace")


def split_lines(text: str) -> list[str]:
    """Split text into lines the way Python's text mode ``readlines`` does (CRLF, CR or LF endings)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # a final newline ends the last line; it does not start a new one
    return lines


def clean_line(line: str) -> str:
    """The textbook's rule: runs of non-letters become one space; strip; lower-case."""
    return NON_LETTERS.sub(" ", line).strip().lower()


def strip_gutenberg(lines: list[str]) -> list[str]:
    """Keep only the lines between Project Gutenberg's ``*** START OF`` and ``*** END OF`` markers."""
    start = next((i for i, line in enumerate(lines) if GUTENBERG_START.match(line)), None)
    if start is None:
        raise DataError(
            "clean.strip_gutenberg is true but the text has no '*** START OF ...' line; "
            "set it to false for a text without a Project Gutenberg header"
        )
    end = next((i for i in range(start + 1, len(lines)) if GUTENBERG_END.match(lines[i])), None)
    if end is None:
        raise DataError(
            "the text has a '*** START OF ...' line but no '*** END OF ...' line after it"
        )
    return lines[start + 1 : end]


def clean_text(raw: bytes, params: CleanParams) -> list[str]:
    """Raw corpus bytes → cleaned lines (empty lines kept). Fails on a text with no letters at all."""
    lines = split_lines(decode(raw))
    if params.strip_gutenberg:
        lines = strip_gutenberg(lines)
    cleaned = [clean_line(line) for line in lines]
    if not any(cleaned):
        raise DataError("the corpus has no letters A-Z at all after cleaning; nothing to model")
    return cleaned
