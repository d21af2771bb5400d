"""The corpus stage's logic: token ids per split, data statistics, n-gram frequency tables.

This module also owns reading a split back (:func:`load_split`): every evaluator gets the stream ids,
the character count and the OOV count from here, so they all score the same targets. And it runs the
data stages in memory (:func:`prepare_text`): a text → its splits and vocabulary, exactly as the
clean, tokenize, vocab and corpus stages would leave them with the same params.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seqlm.core.errors import DataError
from seqlm.data.clean import clean_text
from seqlm.data.split import SPLITS, check_blocks, split_by_line
from seqlm.data.tokens import (
    Tokenization,
    as_tokenization,
    count_characters,
    read_token_file,
    stream,
    tokenize_lines,
)
from seqlm.data.vocab import Vocab, build_vocab
from seqlm.params import CleanParams, TokenizeParams, VocabParams

FREQ_TABLES = {1: "unigrams", 2: "bigrams", 3: "trigrams"}


@dataclass(frozen=True)
class SplitData:
    """One split as every model sees it."""

    name: str
    ids: np.ndarray  # (N,) int32 token ids of the stream
    lines: int  # lines read (line_end space: non-empty lines)
    characters: int  # length of the running text
    oov: int  # tokens mapped to <unk>

    @classmethod
    def of(
        cls, name: str, ids: np.ndarray, token_lines: list[list[str]], tok: Tokenization
    ) -> SplitData:
        """A split from its stream ids and its token lines (which give the line and character counts)."""
        return cls(
            name=name,
            ids=ids,
            lines=len(token_lines),
            characters=count_characters(token_lines, tok),
            oov=int(np.count_nonzero(ids == 0)),
        )

    def stats(self) -> dict[str, float | int]:
        """The split's record in ``metrics/data.json``."""
        tokens = int(self.ids.size)
        return {
            "lines": self.lines,
            "tokens": tokens,
            "characters": self.characters,
            "oov": self.oov,
            "oov_rate": self.oov / tokens if tokens else 0.0,
        }


def encode_split(
    name: str, token_lines: list[list[str]], tok: Tokenization, vocab: Vocab
) -> SplitData:
    """Encode one split's token lines as its stream of ids."""
    toks = stream(token_lines, tok)
    if not toks:
        raise DataError(f"the {name} split has no tokens")
    return SplitData.of(name, vocab.encode(toks), token_lines, tok)


def ids_path(corpus_dir: str | os.PathLike[str], split: str) -> Path:
    """Where the corpus stage puts a split's ids."""
    return Path(corpus_dir) / f"{split}.npy"


def tokens_path(tokens_dir: str | os.PathLike[str], split: str) -> Path:
    """Where the tokenize stage puts a split's token lines."""
    return Path(tokens_dir) / f"{split}.jsonl"


def freq_path(freq_dir: str | os.PathLike[str], n: int) -> Path:
    """Where the corpus stage puts the train frequency table of n-grams of order ``n``."""
    return Path(freq_dir) / f"{FREQ_TABLES[n]}.csv"


def load_split(
    corpus_dir: str | os.PathLike[str],
    tokens_dir: str | os.PathLike[str],
    split: str,
    tok: Tokenization,
) -> SplitData:
    """Read a split back: ids from the corpus stage, line and character counts from its tokens."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    token_lines = read_token_file(tokens_path(tokens_dir, split))
    ids = np.load(ids_path(corpus_dir, split), allow_pickle=False)
    return SplitData.of(split, ids, token_lines, tok)


def freq_table(toks: Sequence[str], n: int, token: str) -> pd.DataFrame:
    """The n-grams of a token stream with their counts: columns ``rank, ngram, count``.

    By descending count, ties in first-occurrence order; rank from 1; an n-gram's tokens are joined
    as text (words with a space, characters glued).
    """
    tokens = pd.Series(list(toks), dtype=object)
    size = max(len(tokens) - n + 1, 0)
    parts = [tokens.iloc[i : i + size].reset_index(drop=True) for i in range(n)]
    grams = parts[0].str.cat(parts[1:], sep=" " if token == "word" else "") if size else parts[0]
    counts = grams.groupby(grams, sort=False).size()  # first-occurrence order
    counts = counts.sort_values(ascending=False, kind="stable")
    return pd.DataFrame(
        {"rank": np.arange(1, counts.size + 1), "ngram": counts.index, "count": counts.to_numpy()}
    )


def freq_table_csv(toks: Sequence[str], n: int, token: str) -> str:
    """The frequency table of n-grams (:func:`freq_table`) as CSV with a header row."""
    return freq_table(toks, n, token).to_csv(index=False, lineterminator="\n")


@dataclass(frozen=True)
class PreparedData:
    """A text's data as the data stages leave it."""

    vocab: Vocab
    token_lines: dict[str, list[list[str]]]  # split -> tokens of each line
    splits: dict[str, SplitData]  # split -> ids and statistics


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
    token_lines = tokenize_splits(cleaned, tok)
    train_stream = stream(token_lines["train"], tok)
    voc = build_vocab(train_stream, vocab if vocab is not None else VocabParams())
    splits = {s: encode_split(s, tl, tok, voc) for s, tl in token_lines.items()}
    return PreparedData(vocab=voc, token_lines=token_lines, splits=splits)


def tokenize_splits(
    lines: list[str] | Mapping[str, list[str]], params: Tokenization
) -> dict[str, list[list[str]]]:
    """Tokenize each split (the tokenize stage): a one-file corpus's cleaned lines are first cut into
    train/val/test by line index; a pre-split corpus's (a mapping split → lines) are used as they
    are."""
    tok = as_tokenization(params)
    if isinstance(lines, Mapping):
        blocks = {split: list(lines[split]) for split in SPLITS}
        check_blocks(blocks)
    else:
        blocks = split_by_line(lines, tok.train_fraction, tok.val_fraction, tok.test_fraction)
    return {split: tokenize_lines(blocks[split], tok) for split in SPLITS}
