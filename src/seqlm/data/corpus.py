"""The corpus stage's logic: token ids per split, data statistics, n-gram frequency tables.

This module also owns reading a split back (:func:`load_split`): every evaluator gets the stream ids
(memory-mapped, :mod:`seqlm.data.ids`), the character count and the OOV count from here, so they all
score the same targets. And it runs the data stages in memory (:func:`prepare_text`): a text → its
splits and vocabulary, exactly as the clean, tokenize, vocab and corpus stages would leave them with
the same params. The stages themselves go through a split in batches of lines
(:func:`encode_split_file`), never holding a large corpus's tokens as Python objects.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqlm.core.errors import DataError
from seqlm.data.clean import clean_text, decode, read_blocks, split_lines
from seqlm.data.freq import (  # noqa: F401 (FREQ_TABLES, freq_table_csv: read from here)
    FREQ_TABLES,
    FreqCounter,
    TokenIndex,
    freq_table_csv,
)
from seqlm.data.ids import id_dtype, read_ids, read_range, write_ids
from seqlm.data.split import SPLITS, check_blocks, line_bounds, no_text, split_by_line
from seqlm.data.subword import subword_of, subword_vocab, train_subword
from seqlm.data.tokens import (
    Tokenization,
    TokenStats,
    as_tokenization,
    iter_line_batches,
    read_token_stats,
    stream,
    stream_batches,
    tokenize_lines,
)
from seqlm.data.vocab import Vocab, vocab_from_counts
from seqlm.params import SUBWORD_TOKENS, CleanParams, TokenizeParams, VocabParams


@dataclass(frozen=True)
class SplitData:
    """One split as every model sees it."""

    name: str
    ids: np.ndarray  # (N,) token ids of the stream, unsigned (seqlm.data.ids), maybe memory-mapped
    lines: int  # lines read (line_end space: non-empty lines)
    characters: int  # length of the running text
    oov: int  # tokens mapped to <unk>
    bytes: int | None = None  # its UTF-8 length (None: not counted, no bits per byte)
    words: int | None = None  # its words and line ends (None: not counted, no word perplexity)

    @classmethod
    def of(cls, name: str, ids: np.ndarray, stats: TokenStats, oov: int | None = None) -> SplitData:
        """A split from its stream ids and its token statistics (lines and characters); ``oov``
        is counted from the ids unless given."""
        if stats.tokens != ids.size:
            raise DataError(
                f"the {name} split has {ids.size} ids but its token file {stats.tokens} tokens; "
                "run the tokenize and corpus stages again"
            )
        if oov is None:
            oov = sum(  # by file reads: a mapped split's pages are not kept (read_range)
                int(np.count_nonzero(read_range(ids, i, i + CHUNK) == 0))
                for i in range(0, ids.size, CHUNK)
            )
        return cls(
            name=name,
            ids=ids,
            lines=stats.lines,
            characters=stats.characters,
            oov=oov,
            bytes=stats.bytes,
            words=stats.words,
        )

    def stats(self) -> dict[str, float | int]:
        """The split's record in ``metrics/data.json``."""
        tokens = int(self.ids.size)
        return {
            "lines": self.lines,
            "tokens": tokens,
            "characters": self.characters,
            "bytes": self.bytes,
            "words": self.words,
            "oov": self.oov,
            "oov_rate": self.oov / tokens if tokens else 0.0,
        }


CHUNK = 1 << 22  # ids handled at a time when going through a split


def encode_split(
    name: str, token_lines: list[list[str]], tok: Tokenization, vocab: Vocab
) -> SplitData:
    """Encode one split's token lines (in memory) as its stream of ids."""
    toks = stream(token_lines, tok)
    if not toks:
        raise DataError(f"the {name} split has no tokens")
    ids = vocab.encode(toks).astype(id_dtype(len(vocab)))
    return SplitData.of(name, ids, TokenStats.of(token_lines, tok))


class SplitEncoder:
    """Encodes a stream in pieces: each token gets its own id in first-occurrence order (a
    :class:`~seqlm.data.freq.TokenIndex`, what the frequency tables count) and, through a table
    from those ids, its vocabulary id: one pass of Python per token."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self.index = TokenIndex()
        self.to_vocab = np.zeros(0, dtype=np.int64)

    def encode(self, piece: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(own ids, vocabulary ids)`` of the next piece of the stream."""
        own = self.index.encode(piece)
        new = self.index.tokens[self.to_vocab.size :]
        if new:
            added = np.fromiter(map(self.vocab.index, new), dtype=np.int64, count=len(new))
            self.to_vocab = np.r_[self.to_vocab, added]
        return own, self.to_vocab[own]


def encode_split_file(
    name: str,
    tokens_dir: str | os.PathLike[str],
    tok: Tokenization,
    vocab: Vocab,
    out: Path,
    freq: FreqCounter | None = None,
) -> tuple[SplitData, list[str]]:
    """Encode a split's token file to the ids file ``out`` batch by batch (the corpus stage).

    ``freq``, when given, counts the stream's n-grams on the way. Returns the split (its ids read
    back mapped) and its distinct tokens in first-occurrence order (the names of ``freq``'s ids)."""
    t = as_tokenization(tok)
    path = tokens_path(tokens_dir, name)
    stats = read_token_stats(path)
    if stats.tokens == 0:
        raise DataError(f"the {name} split has no tokens")
    encoder, oov = SplitEncoder(vocab), 0

    def chunks() -> Iterator[np.ndarray]:
        nonlocal oov
        for piece in stream_batches(iter_line_batches(path, t.token), t):
            own, ids = encoder.encode(piece)
            if freq is not None:
                freq.add(own)
            oov += int(np.count_nonzero(ids == 0))
            yield ids

    write_ids(out, chunks(), stats.tokens, id_dtype(len(vocab)))
    return SplitData.of(name, read_ids(out), stats, oov), encoder.index.tokens


def ids_path(corpus_dir: str | os.PathLike[str], split: str) -> Path:
    """Where the corpus stage puts a split's ids."""
    return Path(corpus_dir) / f"{split}.npy"


def tokens_path(tokens_dir: str | os.PathLike[str], split: str) -> Path:
    """Where the tokenize stage puts a split's token lines."""
    return Path(tokens_dir) / f"{split}.txt"


def freq_path(freq_dir: str | os.PathLike[str], n: int) -> Path:
    """Where the corpus stage puts the train frequency table of n-grams of order ``n``."""
    return Path(freq_dir) / f"{FREQ_TABLES[n]}.csv"


def load_split(
    corpus_dir: str | os.PathLike[str],
    tokens_dir: str | os.PathLike[str],
    split: str,
    tok: Tokenization,
) -> SplitData:
    """Read a split back: ids from the corpus stage (memory-mapped, read-only), line and character
    counts from the tokenize stage's statistics. ``tok`` is kept for callers' symmetry."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    as_tokenization(tok)
    stats = read_token_stats(tokens_path(tokens_dir, split))
    return SplitData.of(split, read_ids(ids_path(corpus_dir, split)), stats)


@dataclass(frozen=True)
class PreparedData:
    """A text's data as the data stages leave it."""

    vocab: Vocab
    token_lines: dict[str, list[list[str]]]  # split -> tokens of each line
    splits: dict[str, SplitData]  # split -> ids and statistics
    subword: bytes | None = None  # the subword model (bpe, unigram), trained on train


Text = str | bytes


def prepare_text(
    text: Text | Mapping[str, Text],
    tokenize: TokenizeParams | None = None,
    vocab: VocabParams | None = None,
    clean: CleanParams | None = None,
) -> PreparedData:
    """The data stages in memory: what clean, tokenize, vocab and corpus make of ``text``.

    ``text`` is one corpus (cut by the fractions) or a mapping ``train``/``val``/``test`` → text
    (a pre-split corpus). Defaults are each section's defaults. The same params give the same
    splits and vocabulary as the stages (they call the same functions), so tests and benchmarks
    need not rebuild them.
    """
    tok = tokenize if tokenize is not None else TokenizeParams()
    cln = clean if clean is not None else CleanParams()

    def lines_of(t: Text, name: str) -> list[str]:
        return clean_text(t.encode("utf-8") if isinstance(t, str) else t, cln, name)

    if isinstance(text, Mapping):
        cleaned: list[str] | dict[str, list[str]] = {s: lines_of(text[s], s) for s in SPLITS}
    else:
        cleaned = lines_of(text, "the corpus")
    token_lines, model = tokenize_splits(cleaned, tok)
    counts = collections.Counter(stream(token_lines["train"], tok))
    vp = vocab if vocab is not None else VocabParams()
    voc = subword_vocab(counts, model, vp) if model is not None else vocab_from_counts(counts, vp)
    splits = {s: encode_split(s, tl, tok, voc) for s, tl in token_lines.items()}
    return PreparedData(vocab=voc, token_lines=token_lines, splits=splits, subword=model)


def line_blocks(
    lines: list[str] | Mapping[str, list[str]], params: Tokenization
) -> dict[str, list[str]]:
    """Each split's cleaned lines: a one-file corpus's are cut into train/val/test by line index; a
    pre-split corpus's (a mapping split → lines) are used as they are."""
    tok = as_tokenization(params)
    if isinstance(lines, Mapping):
        blocks = {split: list(lines[split]) for split in SPLITS}
        check_blocks(blocks)
        return blocks
    return split_by_line(lines, tok.train_fraction, tok.val_fraction, tok.test_fraction)


def train_tokenizer(blocks: Mapping[str, list[str]], params: Tokenization) -> bytes | None:
    """The subword model of a ``bpe``/``unigram`` tokenization, trained on the train split's lines
    only (None for words and characters)."""
    tok = as_tokenization(params)
    if tok.token not in SUBWORD_TOKENS or tok.vocab_size is None:
        return None
    return train_subword(blocks["train"], tok.token, tok.vocab_size)


def tokenize_splits(
    lines: list[str] | Mapping[str, list[str]], params: Tokenization
) -> tuple[dict[str, list[list[str]]], bytes | None]:
    """Tokenize each split in memory (what the tokenize stage writes: see :func:`line_blocks`);
    with the subword model trained for it, if any."""
    blocks = line_blocks(lines, params)
    model = train_tokenizer(blocks, params)
    sub = subword_of(model) if model is not None else None
    return {split: tokenize_lines(blocks[split], params, sub) for split in SPLITS}, model


@dataclass(frozen=True)
class LineRange:
    """Lines ``lo .. hi − 1`` of a cleaned file (``hi`` None: to its end)."""

    path: Path
    lo: int = 0
    hi: int | None = None


def line_count(raw: bytes) -> int:
    """How many lines :func:`seqlm.data.clean.split_lines` finds in a piece of a file that ends
    where a line does (or the file does): its line endings (LF, CRLF or CR), plus an unended last
    line."""
    ends = raw.count(b"\n") + raw.count(b"\r") - raw.count(b"\r\n")
    return ends + (1 if raw and not raw.endswith((b"\n", b"\r")) else 0)


def range_lines(r: LineRange) -> Iterator[str]:
    """The lines of a range, read a block at a time as they are needed; blocks before it are
    only counted."""
    at = 0  # the index of the block's first line
    for offset, raw in read_blocks(r.path):
        if r.hi is not None and at >= r.hi:
            return
        n = line_count(raw)
        if at + n > r.lo:
            lines = split_lines(decode(raw, str(r.path), offset))
            yield from lines[max(r.lo - at, 0) : None if r.hi is None else r.hi - at]
        at += n


def split_ranges(
    files: Mapping[str, Path], single: str, fractions: tuple[float, float, float]
) -> dict[str, LineRange]:
    """Each split's lines as a range of the cleaned files, checked as :func:`split_by_line` and
    :func:`check_blocks` check them, without holding the text: a one-file corpus (``files``
    holds only ``single``) is counted in one pass and cut by :func:`line_bounds`; a pre-split
    corpus's files are its splits."""
    if set(files) != {single}:
        ranges = {name: LineRange(files[name]) for name in SPLITS}
        for name, r in ranges.items():
            if not any(line.strip() for line in range_lines(r)):
                raise DataError(f"the {name} file of the corpus has no text")
        return ranges
    n = sum(line_count(raw) for _, raw in read_blocks(files[single]))
    bounds = line_bounds(n, *fractions)
    ranges = {name: LineRange(files[single], lo, hi) for name, (lo, hi) in bounds.items()}
    for name, (lo, hi) in bounds.items():
        if not any(range_lines(ranges[name])):
            raise no_text(name, lo, hi, n, fractions)
    return ranges
