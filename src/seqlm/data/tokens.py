"""Tokenization, the token-file format, and a split's running text and token stream.

How lines end is ``tokenize.line_end``; a split's *running text* (what bits per character counts)
and its *token stream* follow it:

* ``space``: the running text is the non-empty lines joined with one space; the stream is the words
  of each line in order (``word``), or its characters with one ``" "`` token between consecutive
  lines (``char``);
* ``eos``: the running text is every line (empty ones too) followed by ``\\n``; the stream is each
  line's tokens followed by ``<eos>``;
* ``newline`` (characters only): the running text as for ``eos``; the stream is each line's
  characters followed by the character ``"\\n"``.

A word line's text is its words joined by one space. So ``<eos>`` stands for the line end it
replaces, and ``characters = len(running text)`` is the same denominator for bits per character
whatever the tokenization. (The textbook glues lines together at character level, ``"wells" + "i"
→ "wellsi"``; only the textbook-exact functions in :mod:`seqlm.textbook` keep that.)

Token files hold one JSON list of tokens per line (``.jsonl``; with ``space``, non-empty lines only),
so the line structure survives for the sentence-per-line n-gram mode.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from seqlm.core.errors import DataError, ParamError
from seqlm.params import TOKEN_KINDS, TokenizeParams

EOS = "<eos>"
NEWLINE = "\n"
Tokenization = TokenizeParams | str
"""How a split is tokenized: the ``tokenize`` section, or just a token kind (line ends ``space``)."""


def as_tokenization(tok: Tokenization) -> TokenizeParams:
    """The ``tokenize`` section meant by ``tok`` (a token kind alone means ``line_end: space``)."""
    return tok if isinstance(tok, TokenizeParams) else TokenizeParams(token=tok)


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


def tokenize_lines(lines: list[str], tok: Tokenization) -> list[list[str]]:
    """Tokens of each line; with ``line_end: space`` empty lines are dropped."""
    t = as_tokenization(tok)
    if t.line_end == "space":
        return [tokenize_line(line, t.token) for line in lines if line]
    return [tokenize_line(line, t.token) for line in lines]


def line_end_token(tok: Tokenization) -> str | None:
    """The token after every line (``<eos>`` or ``"\\n"``), or None with ``line_end: space``."""
    t = as_tokenization(tok)
    return {"space": None, "eos": EOS, "newline": NEWLINE}[t.line_end]


def stream(token_lines: list[list[str]], tok: Tokenization) -> list[str]:
    """Join per-line tokens into the split's token stream (see the module docstring)."""
    t = as_tokenization(tok)
    end = line_end_token(t)
    out: list[str] = []
    for i, line in enumerate(token_lines):
        if end is None and t.token == "char" and i > 0:
            out.append(" ")
        out.extend(line)
        if end is not None:
            out.append(end)
    return out


def running_text(token_lines: list[list[str]], tok: Tokenization) -> str:
    """The split's running text, rebuilt from its tokens."""
    t = as_tokenization(tok)
    sep = " " if t.token == "word" else ""
    if t.line_end == "space":
        return " ".join(sep.join(line) for line in token_lines)
    return "".join(sep.join(line) + "\n" for line in token_lines)


def count_characters(token_lines: list[list[str]], tok: Tokenization) -> int:
    """``len(running_text(...))``: the denominator of bits per character."""
    return len(running_text(token_lines, tok))


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
