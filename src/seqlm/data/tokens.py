"""Tokenization, the token-file format, and a split's running text and token stream.

A split's *running text* is its non-empty cleaned lines joined with one space. Its *token stream* is
that running text cut into tokens:

* ``word``: the words of each line, in order (line boundaries add nothing);
* ``char``: the characters of each line, with one ``" "`` token between consecutive lines.

(The textbook glues lines together at character level, ``"wells" + "i" → "wellsi"``; only the
textbook-exact functions in :mod:`seqlm.textbook` keep that.) Because both streams come from the same
running text, ``characters = len(running text)`` is the same denominator for bits per character
whatever the tokenization.

Token files hold one JSON list of tokens per non-empty line (``.jsonl``), so the line structure
survives for the sentence-per-line n-gram mode.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from seqlm.core.errors import DataError, ParamError
from seqlm.params import TOKEN_KINDS


def check_token_kind(token: str) -> None:
    """Raise ParamError unless ``token`` is one of :data:`TOKEN_KINDS`."""
    if token not in TOKEN_KINDS:
        raise ParamError(
            f"tokenize.token = {token!r} is not a tokenization; choose one of: {', '.join(TOKEN_KINDS)}"
        )


def tokenize_line(line: str, token: str) -> list[str]:
    """Tokens of one cleaned line: its words, or its characters (spaces included)."""
    check_token_kind(token)
    return line.split() if token == "word" else list(line)


def tokenize_lines(lines: list[str], token: str) -> list[list[str]]:
    """Tokens of each non-empty line (empty lines are dropped)."""
    return [tokenize_line(line, token) for line in lines if line]


def stream(token_lines: list[list[str]], token: str) -> list[str]:
    """Join per-line tokens into the split's token stream (see the module docstring)."""
    check_token_kind(token)
    out: list[str] = []
    for i, line in enumerate(token_lines):
        if token == "char" and i > 0:
            out.append(" ")
        out.extend(line)
    return out


def running_text(token_lines: list[list[str]], token: str) -> str:
    """The split's running text, rebuilt from its tokens."""
    check_token_kind(token)
    sep = " " if token == "word" else ""
    return " ".join(sep.join(line) for line in token_lines)


def count_characters(token_lines: list[list[str]], token: str) -> int:
    """``len(running_text(...))``: the denominator of bits per character."""
    return len(running_text(token_lines, token))


def write_token_file(path: str | os.PathLike[str], token_lines: list[list[str]]) -> None:
    """Write one JSON list per line, atomically."""
    from seqlm.core.atomic import write_text

    write_text(path, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in token_lines))


def read_token_file(path: str | os.PathLike[str]) -> list[list[str]]:
    """Read a token file written by :func:`write_token_file`."""
    p = Path(path)
    out: list[list[str]] = []
    for n, raw in enumerate(p.read_text(encoding="utf-8").split("\n"), start=1):
        if not raw:
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError as e:
            raise DataError(f"{p}:{n}: not a JSON list of tokens ({e.msg})") from e
        if not isinstance(line, list) or not all(isinstance(t, str) for t in line):
            raise DataError(f"{p}:{n}: expected a JSON list of strings, got {raw[:60]!r}")
        out.append(line)
    return out
