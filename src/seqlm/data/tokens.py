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

A word line's text is its words joined by one space; a subword line's text is what its pieces
spell (:func:`seqlm.data.subword.pieces_text`: the line itself). So ``<eos>`` stands for the line
end it replaces, and ``characters = len(running text)``, ``bytes`` (its UTF-8 length) and ``words``
(its whitespace-separated words, plus one per line end with ``eos`` and ``newline``: the length of
the word-level stream of the same text) are the same denominators whatever the tokenization.
(The textbook glues lines together at character level, ``"wells" + "i" → "wellsi"``; only the
textbook-exact functions in :mod:`seqlm.textbook` keep that.)

Token files (``{split}.txt``) hold one line of the split per line, as text: a word line's words
joined by one space, a character line as it is (with ``space``, non-empty lines only), a subword
line's pieces joined by one space (a piece spells a space ``▁``, so holds none), each ended by
``\\n``; so the line structure survives for the sentence-per-line n-gram mode, the file diffs and
reads like the corpus, and it is read back in batches of lines (:func:`iter_line_batches`) without
ever holding the split's tokens as Python objects. Beside it, ``{split}.json`` holds the split's
:class:`TokenStats` (lines, tokens, characters, bytes, words), so readers need not count them again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from seqlm.core.errors import DataError, ParamError
from seqlm.data.subword import Subword, pieces_text
from seqlm.params import SUBWORD_TOKENS, TOKEN_KINDS, TokenizeParams

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


def tokenize_line(line: str, token: str, subword: Subword | None = None) -> list[str]:
    """Tokens of one cleaned line: its words, its characters (spaces included), or its pieces
    under the trained ``subword`` model (needed for ``bpe`` and ``unigram``)."""
    check_token_kind(token)
    if token in SUBWORD_TOKENS:
        return need_subword(token, subword).pieces([line])[0]
    return line.split() if token == "word" else list(line)


def need_subword(token: str, subword: Subword | None) -> Subword:
    """``subword``, which a subword token kind cannot do without."""
    if subword is None:
        raise DataError(f"tokenize.token = {token!r} needs its trained tokenizer; none was given")
    return subword


def tokenize_lines(
    lines: list[str], tok: Tokenization, subword: Subword | None = None
) -> list[list[str]]:
    """Tokens of each line; with ``line_end: space`` empty lines are dropped."""
    t = as_tokenization(tok)
    kept = [line for line in lines if line] if t.line_end == "space" else lines
    if t.token in SUBWORD_TOKENS:
        return need_subword(t.token, subword).pieces(kept)
    return [tokenize_line(line, t.token) for line in kept]


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
    texts = [line_string(line, t.token) for line in token_lines]
    if t.line_end == "space":
        return " ".join(texts)
    return "".join(text + "\n" for text in texts)


def count_characters(token_lines: list[list[str]], tok: Tokenization) -> int:
    """``len(running_text(...))``: the denominator of bits per character."""
    return len(running_text(token_lines, tok))


def line_text(tokens: list[str], token: str) -> str:
    """How a line of tokens is written in a token file: words and subword pieces joined by a
    space, characters glued."""
    return ("" if token == "char" else " ").join(tokens)


def line_tokens(text: str, token: str) -> list[str]:
    """The tokens of a line read from a token file (the inverse of :func:`line_text`)."""
    if token in SUBWORD_TOKENS:
        return text.split(" ") if text else []
    return tokenize_line(text, token)


def line_string(tokens: list[str], token: str) -> str:
    """A line's share of the running text: its words joined by a space, its characters glued, or
    the text its subword pieces spell."""
    if token in SUBWORD_TOKENS:
        return pieces_text(tokens)
    return line_text(tokens, token)


@dataclass(frozen=True)
class TokenStats:
    """A split's size as the tokenize stage counted it (``{split}.json``)."""

    lines: int  # lines written (line_end space: non-empty lines)
    tokens: int  # length of the token stream
    characters: int  # length of the running text
    bytes: int  # its length in UTF-8 bytes (bits per byte's denominator)
    words: int  # its words, a line end one more with eos/newline (word perplexity's denominator)

    @classmethod
    def of(cls, token_lines: list[list[str]], tok: Tokenization) -> TokenStats:
        """The statistics of a split held in memory."""
        counter = StatsCounter(tok)
        counter.add(token_lines)
        return counter.stats()


class StatsCounter:
    """Counts a split's :class:`TokenStats` over consecutive batches of its lines."""

    def __init__(self, tok: Tokenization) -> None:
        self.tok = as_tokenization(tok)
        self.lines = self.tokens = self.characters = self.bytes = self.words = 0

    def add(self, token_lines: list[list[str]], texts: list[str] | None = None) -> None:
        """Count one batch of lines (those after every batch counted so far); ``texts`` are their
        :func:`line_string` when already made. Arithmetic only: the lengths of :func:`stream` and
        :func:`running_text` without building them."""
        if not token_lines:
            return
        if texts is None:
            texts = [line_string(line, self.tok.token) for line in token_lines]
        n = len(token_lines)
        tokens, characters = sum(map(len, token_lines)), sum(map(len, texts))
        size = sum(len(text.encode("utf-8")) for text in texts)
        words = sum(len(text.split()) for text in texts)
        if self.tok.line_end == "space":
            joins = n - 1 + (self.lines > 0)  # one space between consecutive lines
            self.tokens += tokens + (joins if self.tok.token == "char" else 0)
            self.characters += characters + joins
            self.bytes += size + joins
            self.words += words
        else:  # a line end (token, character, byte and word) after every line
            self.tokens += tokens + n
            self.characters += characters + n
            self.bytes += size + n
            self.words += words + n
        self.lines += n

    def stats(self) -> TokenStats:
        """What has been counted."""
        return TokenStats(self.lines, self.tokens, self.characters, self.bytes, self.words)


def stats_path(tokens_file: str | os.PathLike[str]) -> Path:
    """Where the statistics of a token file are kept (``train.txt`` → ``train.json``)."""
    return Path(tokens_file).with_suffix(".json")


def write_token_file(
    path: str | os.PathLike[str], batches: Iterable[list[list[str]]], tok: Tokenization
) -> TokenStats:
    """Write batches of token lines as one token file and its statistics, atomically."""
    from seqlm.core.atomic import atomic_path, write_json

    t = as_tokenization(tok)
    counter = StatsCounter(t)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for token_lines in batches:
            texts = [line_text(line, t.token) for line in token_lines]
            f.write("".join(text + "\n" for text in texts))
            # a word or character line's file text is its running text; pieces spell theirs
            counter.add(token_lines, None if t.token in SUBWORD_TOKENS else texts)
    stats = counter.stats()
    write_json(stats_path(path), asdict(stats))
    return stats


def read_token_stats(path: str | os.PathLike[str]) -> TokenStats:
    """The statistics written beside a token file."""
    p = stats_path(path)
    if not p.is_file():
        raise DataError(f"{p} does not exist: run the tokenize stage")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
        return TokenStats(**{k: int(raw[k]) for k in STATS_KEYS})
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"{p}: not the statistics of a token file ({e})") from e


STATS_KEYS = ("lines", "tokens", "characters", "bytes", "words")
BATCH_CHARS = 1 << 20  # characters of token file read per batch


def iter_line_batches(
    path: str | os.PathLike[str], token: str, batch_chars: int = BATCH_CHARS
) -> Iterator[list[list[str]]]:
    """The token lines of a token file, in batches of about ``batch_chars`` characters."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"token file {str(p)!r} does not exist: run the tokenize stage")
    batch: list[list[str]] = []
    size = 0
    with open(p, encoding="utf-8", newline="\n") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.endswith("\n"):
                raise DataError(f"{p}:{n}: the last line has no line end (a truncated file?)")
            batch.append(line_tokens(raw[:-1], token))
            size += len(raw)
            if size >= batch_chars:
                yield batch
                batch, size = [], 0
    if batch:
        yield batch


def read_token_file(path: str | os.PathLike[str], token: str) -> list[list[str]]:
    """Every token line of a token file (for what needs them all: sentence mode, tests)."""
    return [line for batch in iter_line_batches(path, token) for line in batch]


def stream_batches(batches: Iterable[list[list[str]]], tok: Tokenization) -> Iterator[list[str]]:
    """The split's token stream (:func:`stream`) in pieces, one per batch of lines."""
    t = as_tokenization(tok)
    first = True
    for token_lines in batches:
        if not token_lines:
            continue
        part = stream(token_lines, t)
        if not first and t.line_end == "space" and t.token == "char":
            part.insert(0, " ")
        first = False
        yield part
