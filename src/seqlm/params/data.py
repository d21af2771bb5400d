"""The data sections' schemas: ``download``, ``clean``, ``tokenize``, ``vocab``."""

from __future__ import annotations

import urllib.parse
from typing import Annotated, ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

from seqlm.core.errors import ParamError
from seqlm.core.schema import Allowed, Listed, NonNegativeInt, Positive, Section, choices
from seqlm.data.split import SPLITS, check_fractions

SCHEMES = ("http", "https", "file")
TokenKind = Literal["word", "char", "bpe", "unigram"]
TOKEN_KINDS = choices(TokenKind)
SUBWORD_TOKENS = ("bpe", "unigram")
"""The token kinds of a trained subword model (:mod:`seqlm.data.subword`)."""
LineEnd = Literal["space", "eos", "newline"]
LINE_ENDS = choices(LineEnd)
CleanMode = Literal["textbook", "none"]
CLEAN_MODES = choices(CleanMode)
RESERVED_CHOICES = ("<pad>", "<bos>", "<eos>")
"""Tokens ``vocab.reserved`` may place after ``<unk>`` (always index 0)."""
SINGLE = "corpus"
"""The name of a one-file corpus's only file (split by ``tokenize.*_fraction``)."""
SHA1_PATTERN = r"^[0-9a-fA-F]{40}$"
Sha1 = Annotated[str, Field(pattern=SHA1_PATTERN), Allowed("is not a 40-digit hex sha1")]


def check_url(key: str, url: str) -> str:
    """``url`` if its scheme is one of :data:`SCHEMES`, else a ParamError naming ``key``."""
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in SCHEMES:
        raise ParamError(f"{key} = {url!r} has scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")
    return url


class Source(Section):
    """One file of a corpus: where it is published and its sha1 (checked on every fetch)."""

    section: ClassVar[str] = "download.splits.<split>"
    url: str
    sha1: Sha1

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        return check_url("download.splits.<split>.url", url)


class DownloadParams(Section):
    """The ``download`` section: the corpus's files and their sha1s, checked on every fetch.

    Either ``url`` and ``sha1``: one file, cut into train/val/test by ``tokenize.*_fraction``; or
    ``splits``: the published ``train``, ``val`` and ``test`` files (each a ``url`` and ``sha1``),
    used as they are.
    """

    section: ClassVar[str] = "download"
    url: str | None = None
    sha1: Annotated[
        str | None, Field(pattern=SHA1_PATTERN), Allowed("is not a 40-digit hex sha1")
    ] = None
    splits: dict[str, Source] | None = None
    timeout_s: Positive = 30.0
    retries: NonNegativeInt = 3

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        return None if url is None else check_url("download.url", url)

    @model_validator(mode="after")
    def _one_corpus(self) -> Self:
        single = self.url is not None or self.sha1 is not None
        if single and self.splits is not None:
            raise ParamError(
                "download has both url/sha1 (one file) and splits (pre-split files); keep one"
            )
        if self.splits is None and (self.url is None or self.sha1 is None):
            raise ParamError(
                "download needs url and sha1 (one file split by fractions) or splits "
                "(train, val and test, each with url and sha1)"
            )
        if self.splits is not None and sorted(self.splits) != sorted(SPLITS):
            raise ParamError(
                f"download.splits has {sorted(self.splits)}; it needs exactly: {', '.join(SPLITS)}"
            )
        return self

    @property
    def presplit(self) -> bool:
        """Whether the corpus comes as published train/val/test files."""
        return self.splits is not None

    def sources(self) -> dict[str, Source]:
        """Each file of the corpus by name: ``corpus``, or ``train``, ``val``, ``test``."""
        if self.splits is not None:
            return {name: self.splits[name] for name in SPLITS}
        assert self.url is not None and self.sha1 is not None
        return {SINGLE: Source(url=self.url, sha1=self.sha1)}


class CleanParams(Section):
    """The ``clean`` section.

    * ``mode``: ``textbook`` (runs of non-letters become one space, lower-case: the d2l rule) or
      ``none`` (the text as published: UTF-8 decoded, BOM dropped, CRLF/CR → LF, Unicode NFC);
    * ``strip_gutenberg``: keep only the lines between Project Gutenberg's START and END markers.
    """

    section: ClassVar[str] = "clean"
    mode: Annotated[
        CleanMode, Allowed(f"is not a cleaning mode; choose one of: {', '.join(CLEAN_MODES)}")
    ] = "textbook"
    strip_gutenberg: bool = False


class TokenizeParams(Section):
    """The ``tokenize`` section: the token kind, the line ends and the split fractions.

    * ``token``: ``word`` (whitespace-separated), ``char``, or subword pieces trained on the train
      split: ``bpe`` (byte-pair encoding) or ``unigram`` (unigram LM) of ``vocab_size`` pieces
      (:mod:`seqlm.data.subword`);
    * ``line_end``: what a line end is in the token stream: ``space`` (lines joined by a space;
      empty lines dropped; word and character level), ``eos`` (every line, empty ones too,
      followed by an ``<eos>`` token) or ``newline`` (a ``\\n`` token after every line: character
      and subword level);
    * ``vocab_size``: the subword model's pieces (256 byte pieces, ``<unk>`` and the train split's
      characters among them); null for ``word`` and ``char``;
    * ``*_fraction``: how a one-file corpus is cut into train/val/test by line (they sum to 1);
      unused for pre-split corpora.
    """

    section: ClassVar[str] = "tokenize"
    token: Annotated[
        TokenKind, Allowed(f"is not a tokenization; choose one of: {', '.join(TOKEN_KINDS)}")
    ] = "char"
    line_end: Annotated[
        LineEnd, Allowed(f"is not a line end; choose one of: {', '.join(LINE_ENDS)}")
    ] = "space"
    train_fraction: float = 0.90
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    vocab_size: Annotated[
        int | None, Field(ge=1), Allowed("must be an integer >= 1, or null (word and char)")
    ] = None

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> Self:
        check_fractions(self.train_fraction, self.val_fraction, self.test_fraction)
        return self

    @model_validator(mode="after")
    def _line_end_fits_the_token(self) -> Self:
        subword = self.token in SUBWORD_TOKENS
        if self.line_end == "newline" and self.token == "word":
            raise ParamError(
                "tokenize.line_end = 'newline' makes '\\n' a token of its own; word level needs "
                "line_end: eos (newline is allowed with: char, bpe, unigram)"
            )
        if self.line_end == "space" and subword:
            raise ParamError(
                f"tokenize.line_end = 'space' joins lines by a space, which {self.token!r} pieces "
                "cannot tell from a space inside a line; subword tokens need line_end: eos or newline"
            )
        if subword and self.vocab_size is None:
            raise ParamError(
                f"tokenize.vocab_size is null; tokenize.token = {self.token!r} needs the number of "
                "pieces to train (an integer, e.g. 1000)"
            )
        if not subword and self.vocab_size is not None:
            raise ParamError(
                f"tokenize.vocab_size = {self.vocab_size} sizes a subword model; tokenize.token = "
                f"{self.token!r} has none: set it to null (vocab.max_size limits a {self.token} "
                "vocabulary)"
            )
        return self


class VocabParams(Section):
    """The ``vocab`` section.

    Tokens seen fewer than ``min_freq`` times become ``<unk>``; ``max_size`` (null = no limit) keeps at
    most that many entries in all (``<unk>`` and ``reserved`` included): the most frequent tokens,
    ties in first-occurrence order.
    """

    section: ClassVar[str] = "vocab"
    min_freq: Annotated[int, Field(ge=1), Allowed("must be >= 1")] = 1
    max_size: Annotated[
        int | None, Field(ge=1), Allowed("must be an integer >= 1, or null (no limit)")
    ] = None
    reserved: Listed[str] = ("<bos>",)

    @field_validator("reserved")
    @classmethod
    def _known_reserved(cls, reserved: tuple[str, ...]) -> tuple[str, ...]:
        for tok in reserved:
            if tok not in RESERVED_CHOICES:
                raise ParamError(
                    f"vocab.reserved has {tok!r}; allowed: {', '.join(RESERVED_CHOICES)} "
                    f"(<unk> is always index 0)"
                )
        if len(set(reserved)) != len(reserved):
            raise ParamError(f"vocab.reserved = {list(reserved)} lists a token twice")
        return reserved

    @model_validator(mode="after")
    def _room_for_reserved(self) -> Self:
        if self.max_size is not None and self.max_size < len(self.reserved) + 2:
            raise ParamError(
                f"vocab.max_size = {self.max_size} leaves no room for a single token after <unk> "
                f"and the {len(self.reserved)} reserved ones; use at least "
                f"{len(self.reserved) + 2}, or null for no limit"
            )
        return self
