"""Sentence mode, the way standard n-gram toolkits (KenLM, SRILM) work.

Each non-empty line is a sentence ``<s> x1 .. xn </s>``: the context starts afresh at ``<s>`` on
every line, and ``</s>`` is a target that ends it. The project's vocabulary is reused: its
``<bos>`` plays ``<s>``; its ``<eos>`` plays ``</s>`` when reserved, otherwise ``</s>`` gets the
next free id.
``<s>`` (and ``<pad>``) are never predicted: like KenLM, the uniform floor of Kneser-Ney spreads
over the other ids only.

In an ARPA file the tokens are written as KenLM's text input would spell them: ``<s>``, ``</s>``,
``<unk>``, and the space character as ``_`` (``t h e _ t i m e`` for a line ``"the time"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seqlm.core.errors import DataError
from seqlm.data.vocab import BOS, EOS, PAD, UNK, Vocab
from seqlm.ngram.counts import count_ngrams
from seqlm.ngram.kneser_ney import KneserNeyModel

ARPA_BOS = "<s>"
ARPA_EOS = "</s>"
SPACE_NAME = "_"


@dataclass(frozen=True)
class SentenceVocab:
    """The project's vocabulary with sentence markers: ids ``0 .. size − 1``."""

    vocab: Vocab

    def __post_init__(self) -> None:
        self.vocab.id_of(BOS)  # DataError naming the fix when <bos> is not reserved

    @property
    def bos_id(self) -> int:
        return self.vocab.id_of(BOS)

    @property
    def eos_id(self) -> int:
        return self.vocab.id_of(EOS) if EOS in self.vocab else len(self.vocab)

    @property
    def size(self) -> int:
        return len(self.vocab) + (0 if EOS in self.vocab else 1)

    def predictable(self) -> np.ndarray:
        """(size,) bool: every id but ``<s>`` and ``<pad>``."""
        mask = np.ones(self.size, dtype=bool)
        mask[self.bos_id] = False
        if PAD in self.vocab:
            mask[self.vocab.id_of(PAD)] = False
        return mask

    def encode(self, token_lines: list[list[str]]) -> list[np.ndarray]:
        """``<s> ids </s>`` for each non-empty line (empty lines are dropped, as lmplz would count
        them as ``<s> </s>``)."""
        return [
            np.r_[self.bos_id, self.vocab.encode(line), self.eos_id].astype(np.int64)
            for line in token_lines
            if line
        ]

    def arpa_names(self) -> list[str]:
        """How each id is written in an ARPA file (see the module docstring)."""
        special = {BOS: ARPA_BOS, EOS: ARPA_EOS, UNK: UNK}
        names = [special.get(tok, SPACE_NAME if tok == " " else tok) for tok in self.vocab.tokens]
        if EOS not in self.vocab:
            names.append(ARPA_EOS)
        for tok, name in zip(self.vocab.tokens, names, strict=False):
            if not name or any(ch.isspace() for ch in name):
                raise DataError(
                    f"token {tok!r} cannot be written in an ARPA file (it holds whitespace)"
                )
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise DataError(f"two tokens would both be written {dup!r} in an ARPA file")
        return names


def fit_sentence_model(
    token_lines: list[list[str]], vocab: Vocab, order: int, prune: Sequence[int] = ()
) -> KneserNeyModel:
    """Modified Kneser-Ney of ``order`` over sentences (one per non-empty line), KenLM-style;
    ``prune`` as ``lmplz --prune`` (:mod:`seqlm.ngram.pruning`)."""
    sv = SentenceVocab(vocab)
    sequences = sv.encode(token_lines)
    if not sequences:
        raise DataError("sentence mode needs at least one non-empty line")
    counts = count_ngrams(sequences, sv.size, order, sv.bos_id)
    return KneserNeyModel(counts, order, allowed=sv.predictable(), prune=prune)


def sentence_logprobs(
    model: KneserNeyModel, vocab: Vocab, token_lines: list[list[str]], include_eos: bool = True
) -> np.ndarray:
    """Natural-log probability of every token of every sentence (``</s>`` too unless excluded)."""
    sv = SentenceVocab(vocab)
    sequences = sv.encode(token_lines)
    if not sequences:
        raise DataError("no non-empty lines to score")
    lp = model.sequence_logprobs(sequences)
    if include_eos:
        return lp
    last = np.cumsum([len(s) - 1 for s in sequences]) - 1  # each sentence's final target is </s>
    return np.delete(lp, last)
