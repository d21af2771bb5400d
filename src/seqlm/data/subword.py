"""Subword tokens: a byte-pair-encoding or unigram-LM tokenizer trained on the train split.

``tokenize.token: bpe`` or ``unigram`` trains a SentencePiece model (Kudo & Richardson, 2018: the
reference implementation of the unigram LM and a BPE trainer, deterministic with one thread) of
``tokenize.vocab_size`` pieces on the train split's lines only, and cuts every line of every split
into its pieces. The text is taken as it is: no normalization, every space kept (as ``▁``), no
dummy prefix; a character the train split never had is spelled in UTF-8 bytes (``<0xE2>``: *byte
fallback*), so no text is out of vocabulary and :func:`pieces_text` of a line's pieces is the line
exactly. The model's bytes are the tokenize stage's ``tokenizer.model`` (the same params and train
split give the same bytes); a model file carries them so that text is read as its training data was.
"""

from __future__ import annotations

import codecs
import collections
import functools
import io
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from seqlm.core.errors import DataError, ParamError
from seqlm.data.vocab import Vocab, vocab_from_counts
from seqlm.params import SUBWORD_TOKENS, VocabParams

SUBWORD_KINDS = SUBWORD_TOKENS
TOKENIZER_FILE = "tokenizer.model"
SPACE = "\u2581"  # how a piece spells a space
BYTES = 256  # byte-fallback pieces: <0x00> .. <0xFF>
UNK_PIECE = "<unk>"  # SentencePiece's own unknown piece (never produced with byte fallback)
_BYTE = re.compile(r"^<0x([0-9A-F]{2})>$")


def is_subword(token: str) -> bool:
    """Whether ``token`` names a trained subword tokenization."""
    return token in SUBWORD_KINDS


def min_vocab_size(required_chars: int) -> int:
    """The smallest ``vocab_size`` a train split with ``required_chars`` distinct characters allows:
    the 256 byte pieces, ``<unk>`` and one piece per character."""
    return BYTES + 1 + required_chars


def train_subword(lines: Iterable[str], kind: str, vocab_size: int) -> bytes:
    """Train a ``kind`` (``bpe``/``unigram``) model of ``vocab_size`` pieces on ``lines``; its bytes.

    A ``vocab_size`` the lines cannot support (below :func:`min_vocab_size`, or more pieces than
    their text has) is a ParamError naming the bound."""
    import sentencepiece as spm

    if kind not in SUBWORD_KINDS:
        raise ParamError(
            f"tokenize.token = {kind!r} is not a subword tokenization ({SUBWORD_KINDS})"
        )
    text = [line for line in lines if line]
    if not text:
        raise DataError("the train split has no text to train a subword tokenizer on")
    chars = len(set("".join(text)))
    if vocab_size < min_vocab_size(chars):
        raise ParamError(
            f"tokenize.vocab_size = {vocab_size} is too small for {kind}: it needs the {BYTES} byte "
            f"pieces, <unk> and the train split's {chars} characters, at least "
            f"{min_vocab_size(chars)}"
        )
    out = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(text),
            model_writer=out,
            model_type=kind,
            vocab_size=vocab_size,
            byte_fallback=True,
            character_coverage=1.0,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=False,
            allow_whitespace_only_pieces=True,
            split_digits=False,
            max_sentence_length=1 << 24,
            input_sentence_size=0,
            shuffle_input_sentence=False,
            num_threads=1,
            minloglevel=2,
            unk_id=0,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            hard_vocab_limit=True,
        )
    except RuntimeError as e:
        found = re.search(r"<= (\d+)", str(e))
        if found:
            raise ParamError(
                f"tokenize.vocab_size = {vocab_size} is more than the train split supports for "
                f"{kind}: at most {found.group(1)}"
            ) from None
        raise ParamError(
            f"tokenize.vocab_size = {vocab_size}: {kind} training failed: {e}"
        ) from None
    return out.getvalue()


class Subword:
    """A trained subword model: cuts lines into pieces."""

    def __init__(self, model: bytes) -> None:
        import sentencepiece as spm

        self.model = bytes(model)
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self.model)
        except RuntimeError as e:
            raise DataError(f"not a subword tokenizer model: {e}") from None

    def pieces(self, lines: Sequence[str]) -> list[list[str]]:
        """The pieces of each line (an empty line has none)."""
        return [list(p) for p in self._sp.encode(list(lines), out_type=str)]

    def vocabulary(self) -> list[str]:
        """Every piece but ``<unk>``, in the model's order."""
        n = self._sp.get_piece_size()
        return [p for p in (self._sp.id_to_piece(i) for i in range(n)) if p != UNK_PIECE]

    def __len__(self) -> int:
        return int(self._sp.get_piece_size())


@functools.lru_cache(maxsize=8)
def subword_of(model: bytes) -> Subword:
    """The :class:`Subword` of a model's bytes (loaded once per process)."""
    return Subword(model)


def save_subword(model: bytes, path: str | os.PathLike[str]) -> None:
    """Write a model's bytes atomically."""
    from seqlm.core.atomic import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(model)


def load_subword(path: str | os.PathLike[str]) -> bytes:
    """A model's bytes, as :func:`save_subword` wrote them."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"subword tokenizer {str(p)!r} does not exist: run the tokenize stage")
    return p.read_bytes()


def pieces_text(pieces: Iterable[str]) -> str:
    """The text a run of pieces spells: ``▁`` a space, runs of byte pieces their UTF-8 text (a
    broken sequence, as a sampled one may be, becomes U+FFFD); anything else as it is."""
    out: list[str] = []
    pending = bytearray()
    for piece in pieces:
        m = _BYTE.match(piece)
        if m:
            pending.append(int(m.group(1), 16))
            continue
        if pending:
            out.append(pending.decode("utf-8", errors="replace"))
            pending.clear()
        out.append(piece.replace(SPACE, " "))
    if pending:
        out.append(pending.decode("utf-8", errors="replace"))
    return "".join(out)


def subword_vocab(counter: collections.Counter[str], model: bytes, params: VocabParams) -> Vocab:
    """The vocabulary of a subword stream: the train tokens by count as for any tokenization
    (:func:`seqlm.data.vocab.vocab_from_counts`), then every piece of the model the train split
    never produced (count 0), so that no text is out of vocabulary. ``vocab.min_freq`` and
    ``vocab.max_size`` would drop pieces: ``tokenize.vocab_size`` sizes a subword vocabulary."""
    if params.min_freq != 1 or params.max_size is not None:
        raise ParamError(
            f"vocab.min_freq = {params.min_freq} and vocab.max_size = {params.max_size} would leave "
            "subword pieces out of the vocabulary; with subword tokens set min_freq: 1 and "
            "max_size: null (tokenize.vocab_size sizes the vocabulary)"
        )
    base = vocab_from_counts(counter, params)
    extra = [p for p in subword_of(model).vocabulary() if p not in base]
    return Vocab(base.tokens + tuple(extra), base.counts + (0,) * len(extra))


class PieceStream:
    """Text of pieces given one at a time (generation streams them): a byte piece is held until
    the UTF-8 character it is part of is complete; ``"<eos>"`` is a line break."""

    def __init__(self) -> None:
        self._bytes = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, piece: str) -> str:
        """The text ``piece`` completes (empty while a character's bytes are still coming)."""
        m = _BYTE.match(piece)
        if m:
            return self._bytes.decode(bytes([int(m.group(1), 16)]))
        flushed = self._bytes.decode(b"", final=True)
        self._bytes.reset()
        return flushed + ("\n" if piece == "<eos>" else piece.replace(SPACE, " "))
