"""The models :func:`seqlm.load` returns: a neural checkpoint, the n-gram stage's model, an ARPA
file and a run's fitted ensemble, each a :class:`~seqlm.lm.base.LanguageModel`.

Each scores a stream exactly as the pipeline does: the neural model through
:func:`seqlm.neural.evaluation.target_logprobs` (what the evaluate stage calls), the n-gram
through its ``target_logprobs`` (what the ngram stage calls), the ensemble by mixing its members'
log-probabilities with the weights the evaluate stage fitted on val
(:func:`seqlm.mixture.apply_mixture`), its dynamically evaluated members adapting as the stages did
(:func:`seqlm.neural.dynamic.dynamic_logprobs`, :func:`seqlm.ngram.dynamic.dynamic_logprobs`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from seqlm.core.errors import DataError
from seqlm.data.vocab import EOS, Vocab
from seqlm.lm.base import LanguageModel, State
from seqlm.lm.text import EncodedText
from seqlm.mixture import apply_mixture
from seqlm.neural.checkpoint import CheckpointInfo
from seqlm.neural.dynamic import check_dynamic, dynamic_logprobs
from seqlm.neural.evaluation import target_logprobs
from seqlm.neural.models import NeuralLM
from seqlm.neural.models.heads import head_scores
from seqlm.neural.models.recurrent import RecurrentLM
from seqlm.neural.models.transformer import TransformerLM
from seqlm.ngram.arpa import ArpaModel
from seqlm.ngram.dynamic import NgramAdaptation
from seqlm.ngram.dynamic import dynamic_logprobs as dynamic_ngram_logprobs
from seqlm.ngram.model import NgramModel
from seqlm.sampling import TextFormat


class NeuralModel(LanguageModel):
    """A trained neural LM (any ``model``), in eval mode."""

    kind = "neural"

    def __init__(
        self, name: str, model: NeuralLM, info: CheckpointInfo, vocab: Vocab, fmt: TextFormat
    ) -> None:
        super().__init__(name, vocab, fmt)
        self.model = model.eval()
        self.info = info

    def target_logprobs(self, ids: np.ndarray) -> np.ndarray:
        return target_logprobs(self.model, ids, self.bos_id)

    @torch.no_grad()
    def _read(self, inputs: list[int], state: State) -> tuple[State, np.ndarray]:
        x = torch.tensor([inputs], dtype=torch.long, device=self.model.device)
        logits, new_state = self.model.stream(x, state)
        return new_state, F.log_softmax(logits[0, -1].double(), dim=-1).cpu().numpy()

    def begin(self, ids: Sequence[int]) -> tuple[State, np.ndarray]:
        return self._read([self.bos_id, *map(int, ids)], None)

    def advance(self, state: State, token_id: int) -> tuple[State, np.ndarray]:
        mutable = not isinstance(state, torch.Tensor | tuple)  # seq2seq's state is an object
        return self._read([int(token_id)], copy.deepcopy(state) if mutable else state)

    @torch.no_grad()
    def distributions(self, ids: np.ndarray) -> np.ndarray:
        """Each target's full distribution, read as the scorer reads it: a recurrent model's one
        stream, the transformer's sliding windows; seq2seq token by token."""
        if not isinstance(self.model, RecurrentLM | TransformerLM):
            return super().distributions(ids)
        t = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=self.model.device)
        inputs = torch.cat([t.new_tensor([self.bos_id]), t[:-1]]).unsqueeze(0)  # (1, N)
        hidden, _ = check_dynamic(self.model)(inputs, None)  # (1, N, H)
        scores = head_scores(self.model.head, hidden)[0]  # (N, V)
        return F.log_softmax(scores.double(), dim=-1).cpu().numpy()


class NgramLM(LanguageModel):
    """The n-gram stage's model (stream mode: the convention's)."""

    kind = "ngram"

    def __init__(self, name: str, model: NgramModel, vocab: Vocab, fmt: TextFormat) -> None:
        super().__init__(name, vocab, fmt)
        self.model = model

    def target_logprobs(self, ids: np.ndarray) -> np.ndarray:
        return self.model.target_logprobs(np.asarray(ids, dtype=np.int64))

    def _context(self, ids: Sequence[int]) -> tuple[int, ...]:
        return (
            tuple(ids)[max(0, len(ids) - (self.model.order - 1)) :] if self.model.order > 1 else ()
        )

    def _logp(self, context: tuple[int, ...]) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.model.distribution(context))

    def begin(self, ids: Sequence[int]) -> tuple[State, np.ndarray]:
        context = self._context([self.bos_id, *map(int, ids)])
        return context, self._logp(context)

    def advance(self, state: State, token_id: int) -> tuple[State, np.ndarray]:
        context = self._context([*state, int(token_id)])
        return context, self._logp(context)


@dataclass(frozen=True)
class DynamicSettings:
    """How the evaluate stage adapted its dynamically evaluated member."""

    lr: float
    decay: float
    segment: int
    update: str


@dataclass(frozen=True)
class Member:
    """One member of an ensemble: its model, weight, and dynamic settings if it adapts."""

    name: str
    model: LanguageModel
    weight: float
    dynamic: DynamicSettings | NgramAdaptation | None = None


class EnsembleLM(LanguageModel):
    """A mixture ``p = Σ_m w_m · p_m`` of models over one vocabulary, weights fitted on val.

    Scoring adapts the dynamic members as the stages did; in generation it predicts as its
    static model (adaptation learns from the tokens of a text being scored, not from tokens that
    are being chosen)."""

    kind = "ensemble"

    def __init__(self, name: str, members: list[Member]) -> None:
        first = members[0].model
        for m in members[1:]:
            if m.model.vocab.checksum() != first.vocab.checksum() or m.model.fmt != first.fmt:
                raise DataError(
                    f"ensemble member {m.name!r} reads another vocabulary or text format than "
                    f"{members[0].name!r}; every member must read the same tokens"
                )
        super().__init__(name, first.vocab, first.fmt)
        self.members = members
        with np.errstate(divide="ignore"):  # a member EM gave no weight: log 0 = -inf
            self.log_weights = np.log(np.array([m.weight for m in members], dtype=np.float64))

    def member_logprobs(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """Each member's log-probability of every target."""
        out = {}
        for m in self.members:
            if m.dynamic is None:
                out[m.name] = m.model.target_logprobs(ids)
            elif isinstance(m.dynamic, NgramAdaptation):
                assert isinstance(m.model, NgramLM)
                out[m.name] = dynamic_ngram_logprobs(m.model.model, ids, m.dynamic, m.name)
            else:
                assert isinstance(m.model, NeuralModel)
                d = m.dynamic
                out[m.name] = dynamic_logprobs(
                    m.model.model,
                    ids,
                    self.bos_id,
                    lr=d.lr,
                    decay=d.decay,
                    segment=d.segment,
                    update=d.update,
                )
        return out

    def target_logprobs(self, ids: np.ndarray) -> np.ndarray:
        return apply_mixture(self.member_logprobs(ids), {m.name: m.weight for m in self.members})

    def _mix(self, logps: list[np.ndarray]) -> np.ndarray:
        """``log Σ_m w_m p_m`` over the members' log-probabilities (the last axis: the ids)."""
        stacked = np.stack(logps) + self.log_weights.reshape(-1, *([1] * logps[0].ndim))
        return np.logaddexp.reduce(stacked, axis=0)

    def distributions(self, ids: np.ndarray) -> np.ndarray:
        """The members' distributions mixed, each member's read at once (a model two members
        share is read once); the dynamic member's are its static model's."""
        seen: dict[int, np.ndarray] = {}
        for m in self.members:
            if id(m.model) not in seen:
                seen[id(m.model)] = m.model.distributions(ids)
        return self._mix([seen[id(m.model)] for m in self.members])

    def begin(self, ids: Sequence[int]) -> tuple[State, np.ndarray]:
        started = [m.model.begin(ids) for m in self.members]
        return tuple(s for s, _ in started), self._mix([lp for _, lp in started])

    def advance(self, state: State, token_id: int) -> tuple[State, np.ndarray]:
        stepped = [m.model.advance(s, token_id) for m, s in zip(self.members, state)]
        return tuple(s for s, _ in stepped), self._mix([lp for _, lp in stepped])


class ArpaLM(LanguageModel):
    """An ARPA back-off model (KenLM's, SRILM's or seqlm's export), read as KenLM reads one: each
    line a sentence ``<s> w1 .. wn </s>`` with its context reset, whitespace-separated tokens,
    ``</s>`` standing for the line end. Log-probabilities are natural logs (ARPA's log10 · ln 10)."""

    kind = "arpa"

    def __init__(self, name: str, arpa: ArpaModel, fmt: TextFormat) -> None:
        names = [w for (w,) in arpa.grams[0]]
        ordered = [arpa.unk, *[w for w in names if w != arpa.unk]]
        super().__init__(name, Vocab(tuple(ordered), tuple(0 for _ in ordered)), fmt)
        self.arpa = arpa

    @property
    def bos_id(self) -> int:
        return self.vocab.index(self.arpa.bos)

    def banned(self) -> list[int]:
        return [self.vocab.index(self.arpa.bos)] if self.arpa.bos in self.vocab else []

    def target_logprobs(self, ids: np.ndarray) -> np.ndarray:
        """Each line of the stream (ended by ``</s>``) scored as a sentence from ``<s>``."""
        words = self.vocab.decode(np.asarray(ids).tolist())
        context: list[str] = [self.arpa.bos]
        out = []
        for w in words:
            out.append(self.arpa.log10_prob(context, w) * math.log(10))
            context = [self.arpa.bos] if w == self.arpa.eos else [*context, w]
        return np.asarray(out, dtype=np.float64)

    def encode(self, text: str | bytes) -> EncodedText:
        """As for every model, with ARPA's ``</s>`` for the line end."""
        enc = super().encode(text)
        tokens = [self.arpa.eos if t == EOS else t for t in enc.tokens]
        ids = self.vocab.encode(tokens).astype(np.int64)
        return replace(enc, tokens=tokens, ids=ids, oov=int(np.count_nonzero(ids == 0)))

    def _logp(self, context: tuple[str, ...]) -> np.ndarray:
        lp = np.full(len(self.vocab), -np.inf)
        for j, w in enumerate(self.vocab.tokens):
            if (w,) in self.arpa.grams[0]:  # an ARPA file may lack <unk>
                lp[j] = self.arpa.log10_prob(context, w) * math.log(10)
        return lp

    def _context(self, words: Sequence[str]) -> tuple[str, ...]:
        return tuple(words)[max(0, len(words) - (self.arpa.order - 1)) :]

    def begin(self, ids: Sequence[int]) -> tuple[State, np.ndarray]:
        context = self._context([self.arpa.bos, *self.vocab.decode(ids)])
        return context, self._logp(context)

    def advance(self, state: State, token_id: int) -> tuple[State, np.ndarray]:
        word = self.vocab.tokens[int(token_id)]
        context = (self.arpa.bos,) if word == self.arpa.eos else self._context([*state, word])
        return context, self._logp(context)
