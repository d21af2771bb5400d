"""Generation from any :class:`~seqlm.lm.base.LanguageModel`: sampling and beam search.

The prompt is read like the corpus (:func:`seqlm.sampling.read_prefix`: cleaned, tokenized, unknown
tokens as ``<unk>``), then the model steps through its next-token distributions
(:meth:`~seqlm.lm.base.LanguageModel.begin`, :meth:`~seqlm.lm.base.LanguageModel.advance`):

* **sampling** (``beam = 0``): each token drawn from the distribution reshaped by temperature,
  top-k and top-p (:func:`seqlm.sampling.next_id`) with ``numpy.random.default_rng(seed)``: the
  same seed gives the same text. Tokens are yielded as they are drawn.
* **beam search** (``beam = B >= 1``), as the d2l book's seq2seq chapter describes it: keep the
  ``B`` most likely sequences so far; at each step extend each by each of its ``B`` most likely
  next tokens and keep the ``B`` best of those ``B²`` by total log-probability. All candidates
  have ``max_tokens`` tokens, so no length penalty is needed. ``B = 1`` is greedy decoding. The
  tokens come when the search ends.

Markers that never occur inside a stream (``<bos>``, ``<pad>``, and ``<eos>`` unless every line ends
with it) are never generated.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from seqlm.core.errors import ParamError
from seqlm.data.subword import PieceStream
from seqlm.data.vocab import Vocab
from seqlm.params import SUBWORD_TOKENS
from seqlm.sampling import (
    TextFormat,
    join_tokens,
    next_id,
    read_prefix,
    sampling_distribution,
    separator,
)

MAX_BEAM = 64
State = Any  # what a model carries from one generated token to the next


class Stepper(Protocol):
    """What generation needs of a model (:class:`seqlm.lm.base.LanguageModel` is one)."""

    vocab: Vocab
    fmt: TextFormat

    def begin(self, ids: Sequence[int]) -> tuple[State, np.ndarray]: ...

    def advance(self, state: State, token_id: int) -> tuple[State, np.ndarray]: ...

    def banned(self) -> list[int]: ...


def check_generation(max_tokens: int, beam: int) -> None:
    """Refuse a negative length or a beam outside 0 .. :data:`MAX_BEAM` (ParamError)."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        raise ParamError(f"max_tokens = {max_tokens!r} must be an integer >= 0")
    if isinstance(beam, bool) or not isinstance(beam, int) or not 0 <= beam <= MAX_BEAM:
        raise ParamError(
            f"beam = {beam!r} must be an integer from 0 (sampling) to {MAX_BEAM}; 1 is greedy"
        )


def generate(
    lm: Stepper,
    prompt: str,
    max_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    beam: int = 0,
    seed: int = 0,
) -> Iterator[str]:
    """The text of each new token after ``prompt``, in order (see the module docstring)."""
    check_generation(max_tokens, beam)
    shown = read_prefix(prompt, lm.fmt, lm.vocab)
    if beam == 0:
        sampling_distribution(np.ones(2) / 2, temperature, top_k, (), top_p)  # settings checked
        ids = sample_ids(lm, shown.ids.tolist(), max_tokens, temperature, top_k, top_p, seed)
    else:
        ids = iter(beam_search(lm, shown.ids.tolist(), max_tokens, beam))
    return token_texts(lm, ids, shown.text)


def token_texts(lm: Stepper, ids: Iterator[int], prompt_text: str) -> Iterator[str]:
    """Each token's text as it reads after the text before it (a space between words, a line
    break for ``<eos>``; subword pieces as the text they complete)."""
    if lm.fmt.token in SUBWORD_TOKENS:
        pieces = PieceStream()
        yield from (pieces.feed(lm.vocab.tokens[token_id]) for token_id in ids)
        return
    previous: str | None = None
    for token_id in ids:
        token = lm.vocab.tokens[token_id]
        if previous is None:
            text = join_tokens([token], lm.fmt)
            yield (separator(prompt_text, lm.fmt) if text != "\n" else "") + text
        else:
            yield join_tokens([previous, token], lm.fmt)[len(join_tokens([previous], lm.fmt)) :]
        previous = token


def sample_ids(
    lm: Stepper,
    prompt_ids: list[int],
    max_tokens: int,
    temperature: float,
    top_k: int,
    top_p: float,
    seed: int,
) -> Iterator[int]:
    """Draw ``max_tokens`` ids one at a time, seeded."""
    if max_tokens == 0:
        return
    rng = np.random.default_rng(seed)
    banned = lm.banned()
    state, logp = lm.begin(prompt_ids)
    for n in range(max_tokens):
        token_id = next_id(
            np.exp(logp),
            rng=rng,
            temperature=temperature,
            top_k=top_k,
            banned_ids=banned,
            top_p=top_p,
        )
        yield token_id
        if n + 1 < max_tokens:
            state, logp = lm.advance(state, token_id)


def beam_search(lm: Stepper, prompt_ids: list[int], max_tokens: int, beam: int) -> list[int]:
    """The most likely continuation of ``max_tokens`` ids that a beam of ``beam`` finds."""
    if max_tokens == 0:
        return []
    banned = lm.banned()
    state, logp = lm.begin(prompt_ids)
    beams: list[tuple[float, list[int], State, np.ndarray]] = [(0.0, [], state, logp)]
    for step in range(max_tokens):
        candidates: list[tuple[float, list[int], State]] = []
        for total, ids, st, lp in beams:
            allowed = np.asarray(lp, dtype=np.float64).copy()
            allowed[banned] = -np.inf
            for j in np.argsort(-allowed, kind="stable")[:beam].tolist():
                if np.isfinite(allowed[j]):
                    candidates.append((total + float(allowed[j]), [*ids, j], st))
        candidates.sort(key=lambda c: -c[0])  # stable: ties keep the earlier beam and token
        kept = candidates[:beam]
        if step + 1 == max_tokens:
            return kept[0][1]
        beams = []
        for total, ids, st in kept:
            new_state, new_lp = lm.advance(st, ids[-1])
            beams.append((total, ids, new_state, new_lp))
    raise AssertionError("unreachable")
