"""Text generation shared by every language model: prefixes, the next-token choice, the text.

The n-gram baseline and the neural models generate the same way:

1. a prefix from ``generate.prefixes`` is read like the corpus (its :class:`TextFormat`): cleaned
   by the corpus's ``clean.mode`` (:func:`seqlm.data.clean.clean_line`), tokenized, and encoded
   (tokens outside the vocabulary become ``<unk>``, with a warning) — :func:`read_prefix`;
2. each new token is the most likely one (greedy) or a draw from the next-token distribution
   reshaped by temperature and top-k — :func:`next_id`, :func:`sampling_distribution`; the markers
   that never occur inside a stream are never generated (:func:`banned_ids`; ``<eos>`` is generated
   where every line ends with it);
3. tokens become text again: characters glued, words between spaces, ``<eos>`` a line break —
   :func:`join_tokens`, with
   :func:`separator` between the prefix and its continuation.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqlm.core.errors import ParamError
from seqlm.data.clean import clean_line
from seqlm.data.subword import TOKENIZER_FILE, Subword, load_subword, pieces_text, subword_of
from seqlm.data.tokens import check_token_kind, tokenize_line
from seqlm.data.vocab import BOS, EOS, PAD, UNK, Vocab
from seqlm.params import SUBWORD_TOKENS, CleanParams, TokenizeParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextFormat:
    """How the corpus's text became tokens: what prefixes are read with and samples written in."""

    token: str = "char"
    line_end: str = "space"
    clean: str = "textbook"
    tokenizer: bytes = b""  # the subword model (bpe, unigram); empty for words and characters

    @classmethod
    def of(
        cls,
        clean: CleanParams,
        tokenize: TokenizeParams,
        tokens_dir: str | os.PathLike[str] | None = None,
    ) -> TextFormat:
        """The format the ``clean`` and ``tokenize`` sections give the corpus; a subword
        tokenization's model is read from the tokenize stage's folder ``tokens_dir``."""
        model = b""
        if tokenize.token in SUBWORD_TOKENS:
            if tokens_dir is None:
                raise ParamError(
                    f"tokenize.token = {tokenize.token!r} needs its tokenizer's folder"
                )
            model = load_subword(Path(tokens_dir) / TOKENIZER_FILE)
        return cls(tokenize.token, tokenize.line_end, clean.mode, model)

    @property
    def subword(self) -> Subword | None:
        """The subword model, loaded (None for words and characters)."""
        return subword_of(self.tokenizer) if self.tokenizer else None


def text_reading(fmt: TextFormat) -> dict[str, str]:
    """The format as a model file records it (``clean``, ``token``, ``line_end``; ``tokenizer``,
    the subword model in base64, for subword tokens)."""
    out = {"clean": fmt.clean, "token": fmt.token, "line_end": fmt.line_end}
    if fmt.tokenizer:
        out["tokenizer"] = base64.b64encode(fmt.tokenizer).decode("ascii")
    return out


def kept_reading(text: dict[str, str], keys: Sequence[str]) -> dict[str, str]:
    """The text reading's ``keys`` and, when it has one, its ``tokenizer``."""
    return {k: text[k] for k in (*keys, "tokenizer") if k in text}


def format_of_reading(text: dict[str, str]) -> TextFormat:
    """The :class:`TextFormat` a model file's text reading (:func:`text_reading`) describes."""
    model = base64.b64decode(text["tokenizer"]) if text.get("tokenizer") else b""
    if text["token"] in SUBWORD_TOKENS and not model:
        raise ParamError(
            f"a {text['token']} model file must carry its tokenizer; this one has none"
        )
    return TextFormat(text["token"], text["line_end"], text["clean"], model)


def text_format(fmt: TextFormat | str) -> TextFormat:
    """``fmt``, or the format of a token kind alone (textbook cleaning, lines joined by spaces)."""
    if isinstance(fmt, TextFormat):
        return fmt
    check_token_kind(fmt)
    return TextFormat(token=fmt)


@dataclass(frozen=True)
class Prefix:
    """A prompt as the models see it."""

    text: str  # cleaned like the corpus
    ids: np.ndarray  # (P,) int64 token ids; unknown tokens are <unk>


def read_prefix(prefix: str, fmt: TextFormat | str, vocab: Vocab) -> Prefix:
    """Clean, tokenize and encode a prefix exactly as the corpus is; warn about unknown tokens."""
    f = text_format(fmt)
    text = clean_line(prefix, f.clean)
    toks = tokenize_line(text, f.token, f.subword)
    unknown = sorted({t for t in toks if t not in vocab})
    if unknown:
        log.warning(
            "prefix %r has tokens outside the vocabulary (%s); they become %s",
            text,
            ", ".join(map(repr, unknown)),
            UNK,
        )
    return Prefix(text=text, ids=vocab.encode(toks).astype(np.int64))


def banned_ids(vocab: Vocab, fmt: TextFormat | str = "char") -> list[int]:
    """Markers that never occur inside a stream (``<bos>``, ``<pad>``, and ``<eos>`` unless every line
    ends with it): not generated."""
    markers = (BOS, PAD) if text_format(fmt).line_end == "eos" else (BOS, EOS, PAD)
    return [vocab.id_of(t) for t in markers if t in vocab]


def sampling_distribution(
    probs: np.ndarray,
    temperature: float = 1.0,
    top_k: int = 0,
    banned_ids: Sequence[int] = (),
    top_p: float = 1.0,
) -> np.ndarray:
    """Reshape a next-token distribution for sampling: ban ids, keep the top k, apply temperature,
    then keep the nucleus: the fewest most likely ids whose probability reaches ``top_p``.

    ``top_k = 0`` and ``top_p = 1`` keep every id; the result sums to 1."""
    if not temperature > 0:
        raise ParamError(f"temperature = {temperature} must be > 0")
    if top_k < 0:
        raise ParamError(f"top_k = {top_k} must be >= 0 (0 = off)")
    if not 0.0 < top_p <= 1.0:
        raise ParamError(f"top_p = {top_p} must be in (0, 1] (1 = off)")
    p = np.asarray(probs, dtype=np.float64).copy()
    p[list(banned_ids)] = 0.0
    if top_k and top_k < np.count_nonzero(p):
        p[np.argsort(p, kind="stable")[:-top_k]] = 0.0
    with np.errstate(divide="ignore"):
        logits = np.log(p) / temperature
    logits -= logits.max()
    q = np.exp(logits)
    q /= q.sum()
    if top_p < 1.0:
        order = np.argsort(-q, kind="stable")  # most likely first, ties by id
        # the fewest that reach top_p (a rounding error's shortfall does not take one more)
        kept = int(np.searchsorted(np.cumsum(q[order]), top_p - 1e-12)) + 1
        q[order[kept:]] = 0.0
        q /= q.sum()
    return q


def next_id(
    probs: np.ndarray,
    *,
    greedy: bool = False,
    rng: np.random.Generator | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    banned_ids: Sequence[int] = (),
    top_p: float = 1.0,
) -> int:
    """The next token id: the most likely allowed one (``greedy``), else a draw from ``rng``."""
    if greedy:
        p = np.asarray(probs, dtype=np.float64).copy()
        p[list(banned_ids)] = 0.0
        return int(np.argmax(p))
    if rng is None:
        raise ValueError("sampling needs a numpy Generator")
    q = sampling_distribution(probs, temperature, top_k, banned_ids, top_p)
    return int(rng.choice(q.size, p=q))


def join_tokens(tokens: Sequence[str], fmt: TextFormat | str) -> str:
    """Text of a token sequence: characters glued, words with spaces; ``<eos>`` ends a line when
    every line ends with it."""
    f = text_format(fmt)
    if f.token in SUBWORD_TOKENS:  # pieces spell their text; <eos> a line break
        return pieces_text("\n" if f.line_end == "eos" and t == EOS else t for t in tokens)
    out: list[str] = []
    for tok in tokens:
        if f.line_end == "eos" and tok == EOS:
            out.append("\n")
            continue
        if f.token == "word" and out and out[-1] != "\n":
            out.append(" ")
        out.append(tok)
    return "".join(out)


def separator(prefix_text: str, fmt: TextFormat | str) -> str:
    """What goes between a prefix and its continuation: a space between words, else nothing."""
    return " " if text_format(fmt).token == "word" and prefix_text else ""
