"""One interface for every trained model: score text, break it down per token, generate.

:class:`LanguageModel` is what :func:`seqlm.load` returns for a neural checkpoint, the n-gram
stage's model, an ARPA file or a run's fitted ensemble::

    lm = seqlm.load("data/model/model.pt")
    lm.score("the time traveller")          # tokens, nll, perplexity, bits per character, oov
    lm.logprobs("the time traveller")       # one natural-log probability per token, with the tokens
    "".join(lm.generate("the time", max_tokens=50, seed=0))

A subclass gives three things: the log-probability of every target of a stream of ids read from
``<bos>`` (:meth:`~LanguageModel.target_logprobs`, the convention of :mod:`seqlm.perplexity`), and
the next-token distribution after a context, from scratch (:meth:`~LanguageModel.begin`) and one
token further (:meth:`~LanguageModel.advance`), which generation steps through
(:mod:`seqlm.lm.generation`). Scores are the convention's numbers: a text is one stream from a
fresh start, like a split, so scoring a split's text gives the pipeline's figures for that split.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqlm.data.vocab import BOS, Vocab
from seqlm.lm.generation import State, generate
from seqlm.lm.text import EncodedText, check_scorable, encode_text
from seqlm.perplexity import SplitScore, score_split
from seqlm.sampling import TextFormat, banned_ids


@dataclass(frozen=True)
class Alternative:
    """A token the model also considered at a position, with its log-probability."""

    token: str
    logprob: float


@dataclass(frozen=True)
class TokenLogprobs:
    """A text's tokens, each with its natural-log probability given everything before it."""

    text: EncodedText
    logprobs: np.ndarray  # (N,) float64
    alternatives: list[list[Alternative]] | None = None  # the top ones per position, when asked

    @property
    def tokens(self) -> list[str]:
        return self.text.tokens

    def score(self) -> SplitScore:
        """The text's score under the convention, from these log-probabilities."""
        t = self.text
        return score_split(self.logprobs, t.characters, t.oov, t.bytes, t.words)

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready record per token: token, logprob, line, oov (and alternatives)."""
        out = []
        for i, (tok, lp) in enumerate(zip(self.text.tokens, self.logprobs.tolist())):
            rec: dict[str, Any] = {
                "token": tok,
                "logprob": lp,
                "line": self.text.lines[int(self.text.line_of[i])],
                "oov": bool(self.text.unknown[i]),
            }
            if self.alternatives is not None:
                rec["alternatives"] = [
                    {"token": a.token, "logprob": a.logprob} for a in self.alternatives[i]
                ]
            out.append(rec)
        return out


@dataclass(frozen=True)
class LineScore:
    """One line's share of a text's score (its tokens and line end)."""

    line: int  # 1-based line number in the text
    score: SplitScore


class LanguageModel(ABC):
    """A trained language model over a vocabulary, reading raw text as its corpus was read."""

    kind: str = ""  # "neural", "ngram", "ensemble", "arpa"

    def __init__(self, name: str, vocab: Vocab, fmt: TextFormat) -> None:
        self.name = name
        self.vocab = vocab
        self.fmt = fmt

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r}: {len(self.vocab)} {self.fmt.token} tokens, "
            f"line_end {self.fmt.line_end}, clean {self.fmt.clean}>"
        )

    @property
    def bos_id(self) -> int:
        return self.vocab.id_of(BOS)

    # --- what a model gives ---------------------------------------------------------------------

    @abstractmethod
    def target_logprobs(self, ids: np.ndarray) -> np.ndarray:
        """``log p(x_t | <bos>, x_1 .. x_{t-1})`` of every id of a non-empty stream (float64)."""

    @abstractmethod
    def begin(self, ids: Sequence[int]) -> tuple[State, np.ndarray]:
        """Read ``<bos>`` then ``ids``: the state, and the next token's log-probabilities ``(V,)``."""

    @abstractmethod
    def advance(self, state: State, token_id: int) -> tuple[State, np.ndarray]:
        """Read one more token after ``state`` (left unchanged): the new state and the next
        token's log-probabilities ``(V,)``."""

    def distributions(self, ids: np.ndarray) -> np.ndarray:
        """``(N, V)``: the log-probability of every id at each target position of the stream (row
        ``t`` is the distribution ``x_t`` was drawn from); for the top alternatives."""
        rows = []
        state, logp = self.begin([])
        for t, token_id in enumerate(np.asarray(ids).tolist()):
            rows.append(logp)
            if t + 1 < len(ids):
                state, logp = self.advance(state, int(token_id))
        return np.stack(rows)

    # --- text -----------------------------------------------------------------------------------

    def encode(self, text: str | bytes) -> EncodedText:
        """The text's token stream, read as the model's corpus was."""
        return encode_text(text, self.fmt, self.vocab)

    def logprobs(self, text: str | bytes, top: int = 0) -> TokenLogprobs:
        """Every token of ``text`` with its log-probability; with ``top`` > 0 also the ``top`` most
        likely tokens at each position."""
        enc = self.encode(text)
        check_scorable(enc)
        lp = np.asarray(self.target_logprobs(enc.ids), dtype=np.float64)
        alternatives = None
        if top > 0:
            dist = self.distributions(enc.ids)
            k = min(top, dist.shape[1])
            best = np.argsort(-dist, axis=1, kind="stable")[:, :k]
            alternatives = [
                [Alternative(self.vocab.tokens[j], float(row[j])) for j in order]
                for row, order in zip(dist, best)
            ]
        return TokenLogprobs(enc, lp, alternatives)

    def score(self, text: str | bytes) -> SplitScore:
        """The text's score under the convention (tokens, nll, perplexity, bits per character,
        oov, characters), the text read as one stream from a fresh start."""
        return self.logprobs(text).score()

    def score_lines(self, text: str | bytes) -> tuple[SplitScore, list[LineScore]]:
        """The text's score, and each line's share of it (the same stream: the lines' nll add up
        to the total)."""
        scored = self.logprobs(text)
        enc, lp = scored.text, scored.logprobs
        total = scored.score()
        # a line's tokens are consecutive in the stream: cut it where the line changes
        cuts = np.flatnonzero(np.diff(enc.line_of)) + 1
        per_line = []
        for idx, part, unknown in zip(
            enc.line_of[np.r_[0, cuts]], np.split(lp, cuts), np.split(enc.unknown, cuts)
        ):
            i = int(idx)
            score = score_split(
                part,
                enc.line_characters[i],
                int(np.count_nonzero(unknown)),
                enc.line_bytes[i],
                enc.line_words[i] or None,  # a line of no word has no word perplexity
            )
            per_line.append(LineScore(enc.lines[i], score))
        return total, per_line

    def generate(
        self,
        prompt: str = "",
        max_tokens: int = 100,
        *,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        beam: int = 0,
        seed: int = 0,
    ) -> Iterator[str]:
        """Continue ``prompt`` (read like the corpus) token by token: sampled (seeded, with
        temperature, top-k and top-p), or with ``beam`` >= 1 the most likely continuation found by
        beam search (1 = greedy). Yields each new token's text as it comes."""
        return generate(
            self,
            prompt,
            max_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            beam=beam,
            seed=seed,
        )

    # --- helpers for generation -----------------------------------------------------------------

    def banned(self) -> list[int]:
        """Ids never generated: the markers that never occur inside a stream."""
        return banned_ids(self.vocab, self.fmt)
