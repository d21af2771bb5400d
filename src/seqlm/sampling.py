"""Text generation shared by every language model: prefixes, the next-token choice, the text.

The n-gram baseline and the neural models generate the same way:

1. a prefix from ``generate.prefixes`` is read like the corpus: cleaned by the textbook's rule
   (:func:`seqlm.data.clean.clean_line`), tokenized, and encoded (tokens outside the vocabulary
   become ``<unk>``, with a warning) — :func:`read_prefix`;
2. each new token is the most likely one (greedy) or a draw from the next-token distribution
   reshaped by temperature and top-k — :func:`next_id`, :func:`sampling_distribution`; the markers
   that never occur inside a stream are never generated (:func:`banned_ids`);
3. tokens become text again: characters glued, words between spaces — :func:`join_tokens`, with
   :func:`separator` between the prefix and its continuation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seqlm.core.errors import ParamError
from seqlm.data.clean import clean_line
from seqlm.data.tokens import tokenize_line
from seqlm.data.vocab import BOS, EOS, PAD, UNK, Vocab

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prefix:
    """A prompt as the models see it."""

    text: str  # cleaned like the corpus
    ids: np.ndarray  # (P,) int64 token ids; unknown tokens are <unk>


def read_prefix(prefix: str, token: str, vocab: Vocab) -> Prefix:
    """Clean, tokenize and encode a prefix exactly as the corpus is; warn about unknown tokens."""
    text = clean_line(prefix)
    toks = tokenize_line(text, token)
    unknown = sorted({t for t in toks if t not in vocab})
    if unknown:
        log.warning(
            "prefix %r has tokens outside the vocabulary (%s); they become %s",
            text,
            ", ".join(map(repr, unknown)),
            UNK,
        )
    return Prefix(text=text, ids=vocab.encode(toks).astype(np.int64))


def banned_ids(vocab: Vocab) -> list[int]:
    """Markers that never occur inside a stream (``<bos>``, ``<eos>``, ``<pad>``): not generated."""
    return [vocab.id_of(t) for t in (BOS, EOS, PAD) if t in vocab]


def sampling_distribution(
    probs: np.ndarray, temperature: float = 1.0, top_k: int = 0, banned_ids: Sequence[int] = ()
) -> np.ndarray:
    """Reshape a next-token distribution for sampling: ban ids, keep the top k, apply temperature.

    ``top_k = 0`` keeps every id; the result sums to 1."""
    if not temperature > 0:
        raise ParamError(f"temperature = {temperature} must be > 0")
    if top_k < 0:
        raise ParamError(f"top_k = {top_k} must be >= 0 (0 = off)")
    p = np.asarray(probs, dtype=np.float64).copy()
    p[list(banned_ids)] = 0.0
    if top_k and top_k < np.count_nonzero(p):
        p[np.argsort(p, kind="stable")[:-top_k]] = 0.0
    with np.errstate(divide="ignore"):
        logits = np.log(p) / temperature
    logits -= logits.max()
    q = np.exp(logits)
    return q / q.sum()


def next_id(
    probs: np.ndarray,
    *,
    greedy: bool = False,
    rng: np.random.Generator | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    banned_ids: Sequence[int] = (),
) -> int:
    """The next token id: the most likely allowed one (``greedy``), else a draw from ``rng``."""
    if greedy:
        p = np.asarray(probs, dtype=np.float64).copy()
        p[list(banned_ids)] = 0.0
        return int(np.argmax(p))
    if rng is None:
        raise ValueError("sampling needs a numpy Generator")
    q = sampling_distribution(probs, temperature, top_k, banned_ids)
    return int(rng.choice(q.size, p=q))


def join_tokens(tokens: Sequence[str], token: str) -> str:
    """Text of a token sequence: characters glued, words with spaces."""
    return "".join(tokens) if token == "char" else " ".join(tokens)


def separator(prefix_text: str, token: str) -> str:
    """What goes between a prefix and its continuation: a space between words, else nothing."""
    return " " if token == "word" and prefix_text else ""
