"""Clean raw corpus bytes into lines: the textbook's rule, or the text as published.

Both modes first read the bytes as text: UTF-8 (a BOM is dropped), lines ending in LF, CRLF or CR.
Bytes that are not UTF-8 text (a binary file, a Latin-1 file) are refused with the offset of the
first bad byte, never turned into a garbage corpus.

* ``textbook``: each line becomes ``re.sub('[^A-Za-z]+', ' ', line).strip().lower()`` (the d2l
  rule: lower-case letters and single spaces);
* ``none``: each line as published, in Unicode NFC; nothing else is touched (PTB's ``<unk>`` and
  ``n't`` stay as they are).

Empty lines are kept, so that line ``i`` of the cleaned text is line ``i`` of the source and the split
by line index is the same whatever the tokenization. A file is cleaned a block at a time
(:func:`read_blocks`: pieces that end just after a line feed, so no line, line ending or character
is cut; :func:`clean_blocks`), so the stage's memory does not grow with the corpus.
"""

from __future__ import annotations

import codecs
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator

from seqlm.core.errors import DataError
from seqlm.params import CleanParams

NON_LETTERS = re.compile("[^A-Za-z]+")
GUTENBERG_START = re.compile(r"^\s*\*\*\*\s*START OF", re.IGNORECASE)
GUTENBERG_END = re.compile(r"^\s*\*\*\*\s*END OF", re.IGNORECASE)
REENCODE = "re-encode it as UTF-8 first (for a Latin-1 file: iconv -f latin1 -t utf-8 IN > OUT)"
BLOCK = 1 << 24  # bytes a file is read by


def decode(raw: bytes, name: str = "the corpus", offset: int = 0) -> str:
    """UTF-8 text of ``raw`` (a BOM dropped); refuses invalid UTF-8 and NUL bytes with their offset.
    ``offset``: where ``raw`` starts in its file (a BOM is looked for only at 0; the offsets in
    the messages are the file's)."""
    bom = len(codecs.BOM_UTF8) if offset == 0 and raw.startswith(codecs.BOM_UTF8) else 0
    try:
        text = raw[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        at = bom + e.start
        raise DataError(
            f"{name} is not UTF-8 text: byte {offset + at} (0x{raw[at]:02x}) cannot be decoded "
            f"({e.reason}); {REENCODE}"
        ) from None
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(
            f"{name} is not text: byte {offset + nul} is a NUL byte (a binary file?); "
            f"seqlm reads UTF-8 text files"
        )
    return text


def read_blocks(
    path: str | os.PathLike[str], block: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """``(offset, bytes)`` of consecutive pieces of a file of about ``block`` bytes (default
    :data:`BLOCK`), each ending just after a line feed (the last at the end of the file): a LF
    byte is never inside a UTF-8 character, and a CRLF never spans two pieces."""
    size = BLOCK if block is None else block
    with open(path, "rb") as f:
        carry, at = b"", 0
        while data := f.read(size):
            buf = carry + data
            cut = buf.rfind(b"\n") + 1
            carry = buf[cut:]
            if cut:
                yield at, buf[:cut]
                at += cut
        if carry:
            yield at, carry


def split_lines(text: str) -> list[str]:
    """Split text into lines the way Python's text mode ``readlines`` does (CRLF, CR or LF endings)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # a final newline ends the last line; it does not start a new one
    return lines


def clean_line(line: str, mode: str = "textbook") -> str:
    """One line cleaned by ``mode``: the textbook's rule (non-letter runs → one space, strip,
    lower-case), or ``none``: the line in Unicode NFC."""
    if mode == "none":
        return unicodedata.normalize("NFC", line)
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


def clean_text(raw: bytes, params: CleanParams, name: str = "the corpus") -> list[str]:
    """Raw corpus bytes → cleaned lines (empty lines kept). Fails on a text left with nothing."""
    return list(clean_blocks([(0, raw)], params, name))


def clean_blocks(
    blocks: Iterable[tuple[int, bytes]], params: CleanParams, name: str = "the corpus"
) -> Iterator[str]:
    """The cleaned lines of a text given as :func:`read_blocks` pieces, one piece decoded at a
    time; the errors of :func:`clean_text` (raised when the text is found to need them: a bad
    byte where it is, a missing Gutenberg marker or a text left with nothing at the end)."""
    state = "before" if params.strip_gutenberg else "in"  # before / in / after the text
    anything = False
    for offset, raw in blocks:
        for line in split_lines(decode(raw, name, offset)):
            if state == "before":
                state = "in" if GUTENBERG_START.match(line) else state
                continue
            if state == "in" and params.strip_gutenberg and GUTENBERG_END.match(line):
                state = "after"
            if state == "in":
                cleaned = clean_line(line, params.mode)
                anything = anything or bool(cleaned.strip())
                yield cleaned
    if state == "before":
        raise DataError(
            "clean.strip_gutenberg is true but the text has no '*** START OF ...' line; "
            "set it to false for a text without a Project Gutenberg header"
        )
    if state == "in" and params.strip_gutenberg:
        raise DataError(
            "the text has a '*** START OF ...' line but no '*** END OF ...' line after it"
        )
    if not anything:
        what = "no letters A-Z" if params.mode == "textbook" else "nothing but white space"
        raise DataError(
            f"{name} has {what} after cleaning (clean.mode = {params.mode}); nothing to model"
        )
