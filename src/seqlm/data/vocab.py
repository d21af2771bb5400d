"""The vocabulary and its file format.

Built from the train split only. ``<unk>`` is index 0, then the reserved tokens in the order given,
then every token seen at least ``min_freq`` times, by descending count with ties in first-occurrence
order (exactly the textbook's ``Vocab``), cut to ``max_size`` entries in all when that is set. A
literal ``<unk>`` in the text (PTB has them) is the ``<unk>`` token. Saved as TSV, one
``token<TAB>count`` row per index after a ``token\\tcount`` header, so it diffs well and loads back
identically; a backslash, tab, newline or carriage return in a token is written ``\\\\``, ``\\t``,
``\\n``, ``\\r``. The count of ``<unk>`` is the number of train tokens it stands for (literal ones,
those under ``min_freq`` and those cut by ``max_size``); other reserved tokens count their
occurrences in the train stream (usually 0).
"""

from __future__ import annotations

import collections
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqlm.core.errors import DataError
from seqlm.params import VocabParams

UNK = "<unk>"
PAD = "<pad>"
BOS = "<bos>"
EOS = "<eos>"
HEADER = "token\tcount"
ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
UNESCAPES = {v[1]: k for k, v in ESCAPES.items()}


def escape(token: str) -> str:
    """A token as the TSV writes it: backslash, tab, newline and CR escaped."""
    return "".join(ESCAPES.get(ch, ch) for ch in token)


def unescape(text: str) -> str:
    """Undo :func:`escape`; a backslash before anything else is an error."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt not in UNESCAPES:
                raise DataError(f"bad escape {text[i : i + 2]!r} in vocabulary token {text!r}")
            out.append(UNESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class Vocab:
    """Index ↔ token mapping with the train counts behind it."""

    tokens: tuple[str, ...]
    counts: tuple[int, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.tokens or self.tokens[0] != UNK:
            raise DataError(f"a vocabulary must start with {UNK!r}")
        if len(self.tokens) != len(self.counts):
            raise DataError("a vocabulary needs one count per token")
        index = {tok: i for i, tok in enumerate(self.tokens)}
        if len(index) != len(self.tokens):
            raise DataError("a vocabulary lists a token twice")
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def index(self, token: str) -> int:
        """Index of ``token``; 0 (``<unk>``) when it is not in the vocabulary."""
        return self._index.get(token, 0)

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """Token ids (int32) of a token sequence; out-of-vocabulary tokens map to ``<unk>``."""
        get = self._index.get
        return np.fromiter((get(t, 0) for t in tokens), dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of a sequence of ids."""
        return [self.tokens[int(i)] for i in ids]

    def id_of(self, token: str) -> int:
        """Index of a token that must be present (a reserved token, say), else DataError."""
        if token not in self._index:
            raise DataError(f"the vocabulary has no {token!r}; add it to vocab.reserved")
        return self._index[token]

    def checksum(self) -> str:
        """sha256 of the saved form: identifies the vocabulary a checkpoint was trained with."""
        return hashlib.sha256(self.to_tsv().encode("utf-8")).hexdigest()

    def to_tsv(self) -> str:
        """The saved form (see the module docstring)."""
        rows = [HEADER]
        for tok, cnt in zip(self.tokens, self.counts):
            rows.append(f"{escape(tok)}\t{cnt}")
        return "\n".join(rows) + "\n"


def build_vocab(train_stream: Sequence[str], params: VocabParams) -> Vocab:
    """Build the vocabulary from the train token stream (and nothing else)."""
    return vocab_from_counts(collections.Counter(train_stream), params)


def count_tokens(pieces: Iterable[Sequence[str]]) -> collections.Counter[str]:
    """How often each token occurs in a stream given in consecutive pieces, keys in first-occurrence
    order (as ``Counter(whole stream)`` would have them)."""
    counter: collections.Counter[str] = collections.Counter()
    for piece in pieces:
        counter.update(piece)  # new keys are appended in their order of appearance
    return counter


def vocab_from_counts(counter: collections.Counter[str], params: VocabParams) -> Vocab:
    """The vocabulary from the train tokens' counts (keys in first-occurrence order)."""
    by_count = sorted(counter.items(), key=lambda kv: kv[1], reverse=True)  # stable: ties keep it
    reserved = [UNK, *params.reserved]
    kept = [(t, c) for t, c in by_count if c >= params.min_freq and t not in reserved]
    if params.max_size is not None:
        kept = kept[: max(params.max_size - len(reserved), 0)]
    kept_tokens = {t for t, _ in kept}
    unk_count = sum(
        c for t, c in by_count if t == UNK or (t not in kept_tokens and t not in reserved)
    )
    tokens = reserved + [t for t, _ in kept]
    counts = [unk_count] + [counter.get(t, 0) for t in params.reserved] + [c for _, c in kept]
    return Vocab(tuple(tokens), tuple(counts))


def save_vocab(vocab: Vocab, path: str | os.PathLike[str]) -> None:
    """Write the vocabulary TSV atomically."""
    from seqlm.core.atomic import write_text

    write_text(path, vocab.to_tsv())


def load_vocab(path: str | os.PathLike[str]) -> Vocab:
    """Read a vocabulary TSV written by :func:`save_vocab`."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"vocabulary file {str(p)!r} does not exist")
    return parse_vocab(p.read_text(encoding="utf-8"), str(p))


def parse_vocab(text: str, name: str = "the vocabulary") -> Vocab:
    """A vocabulary from its saved form (:meth:`Vocab.to_tsv`); ``name`` says where it came from."""
    lines = text.split("\n")
    if not lines or lines[0] != HEADER:
        raise DataError(f"{name} is not a seqlm vocabulary: first line must be {HEADER!r}")
    tokens, counts = [], []
    for n, line in enumerate(lines[1:], start=2):
        if line == "":
            continue
        tok, sep, cnt = line.rpartition("\t")
        if not sep or not cnt.isdigit():
            raise DataError(f"{name}:{n}: expected 'token<TAB>count', got {line!r}")
        tokens.append(unescape(tok))
        counts.append(int(cnt))
    return Vocab(tuple(tokens), tuple(counts))
