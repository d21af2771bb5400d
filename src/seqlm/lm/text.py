"""Raw text → the token stream a model scores, exactly as the data stages make a split of it.

A text is read the way the clean stage reads a corpus file (UTF-8, a BOM dropped, LF, CRLF or CR
line ends), each line cleaned by the model's ``clean`` mode, tokenized by its ``token`` kind and
joined into one stream by its ``line_end`` (:mod:`seqlm.data.tokens`). So scoring the text of a
split gives the figures the pipeline reports for it (:mod:`seqlm.perplexity`), and text the
pipeline never saw is read the same way. Tokens outside the vocabulary become ``<unk>`` and are
counted (``oov``), never refused.

Each token of the stream belongs to one line of the text, so a score can be broken down per line:
a line's tokens and its line end (``<eos>``, ``"\\n"``, or the space that joins it to the next
line with ``line_end: space``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqlm.core.errors import DataError
from seqlm.data.clean import clean_line, decode, split_lines
from seqlm.data.tokens import line_end_token, line_string, tokenize_line
from seqlm.data.vocab import UNK, Vocab
from seqlm.params import TokenizeParams
from seqlm.sampling import TextFormat


@dataclass(frozen=True)
class EncodedText:
    """A text as a model reads it: the stream's tokens and ids, and each token's line."""

    tokens: list[str]  # the stream's tokens as read (before the vocabulary)
    ids: np.ndarray  # (N,) int64 vocabulary ids; out-of-vocabulary tokens are <unk>
    line_of: np.ndarray  # (N,) index into ``lines`` of each token's line
    lines: list[int]  # the source line number (1-based) of each line in the stream
    line_characters: list[int]  # each line's share of the running text (its line end included)
    line_bytes: list[int]  # the same share in UTF-8 bytes
    line_words: list[int]  # its words (and its line end with eos/newline)
    characters: int  # the length of the running text (bits per character's denominator)
    oov: int  # tokens that are <unk>

    @property
    def bytes(self) -> int:
        """The running text's UTF-8 length (bits per byte's denominator)."""
        return sum(self.line_bytes)

    @property
    def words(self) -> int:
        """Its words and line ends (word perplexity's denominator)."""
        return sum(self.line_words)

    @property
    def unknown(self) -> np.ndarray:
        """``(N,)`` bool: the tokens the vocabulary lacks (scored as ``<unk>``)."""
        return self.ids == 0


def as_text(text: str | bytes, name: str = "the text") -> str:
    """``text`` as a string; bytes must be UTF-8 (refused with the offset of the first bad byte)."""
    return decode(text, name) if isinstance(text, bytes) else text


def encode_text(text: str | bytes, fmt: TextFormat, vocab: Vocab) -> EncodedText:
    """Clean, tokenize and encode ``text`` as the pipeline would a split of it."""
    tok = TokenizeParams.model_construct(token=fmt.token, line_end=fmt.line_end)
    end = line_end_token(tok)
    raw_lines = split_lines(as_text(text))
    tokens: list[str] = []
    line_of: list[int] = []
    numbers: list[int] = []
    shares: list[int] = []
    sizes: list[int] = []
    words: list[int] = []
    for number, raw in enumerate(raw_lines, start=1):
        cleaned = clean_line(raw, fmt.clean)
        toks = tokenize_line(cleaned, fmt.token, fmt.subword)
        if end is None and not toks:
            continue  # line_end space: empty lines are not part of the stream
        if end is None and numbers:  # the space joining the previous line to this one
            shares[-1] += 1
            sizes[-1] += 1
            if fmt.token == "char":
                tokens.append(" ")
                line_of.append(len(numbers) - 1)
        numbers.append(number)
        line = line_string(toks, fmt.token)
        shares.append(len(line) + (end is not None))
        sizes.append(len(line.encode("utf-8")) + (end is not None))
        words.append(len(line.split()) + (end is not None))
        tokens.extend(toks)
        line_of.extend([len(numbers) - 1] * len(toks))
        if end is not None:
            tokens.append(end)
            line_of.append(len(numbers) - 1)
    ids = vocab.encode(tokens).astype(np.int64)
    return EncodedText(
        tokens=tokens,
        ids=ids,
        line_of=np.asarray(line_of, dtype=np.int64),
        lines=numbers,
        line_characters=shares,
        line_bytes=sizes,
        line_words=words,
        characters=sum(shares),
        oov=int(np.count_nonzero(ids == vocab.index(UNK))),
    )


def check_scorable(encoded: EncodedText) -> None:
    """Refuse a text with nothing to score (DataError)."""
    if encoded.ids.size == 0 or encoded.characters == 0:
        raise DataError(
            "the text has nothing to score: no token is left after cleaning and tokenizing it"
        )
