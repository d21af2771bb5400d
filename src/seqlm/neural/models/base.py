"""What every neural language model offers the training loop and the evaluator.

:class:`NeuralLM` is the one interface: a model cuts an epoch of training batches out of a split's
ids, gives the loss of one batch from the state the previous batch left, and scores a whole split
under the perplexity convention. The loop (:mod:`seqlm.neural.loop`) and the evaluator
(:mod:`seqlm.neural.evaluation`) call only these methods, so neither knows which model it holds::

    for batch in model.training_batches(ids, bos_id, params, rng):
        loss, targets, state = model.batch_loss(batch, state)   # state: carried or None
    model.split_logprobs(ids, bos_id, ...)                        # one log-probability per target
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from seqlm.core.errors import DataError
from seqlm.neural.models.heads import Head, gather_logprobs, output_bias, unigram_output_bias
from seqlm.params import NetParams, TrainParams

__all__ = ["Batch", "NeuralLM", "Reader", "gather_logprobs", "streamed_logprobs"]

# How a model reads a split as one stream in segments: ``reader(inputs (1, n), state)`` →
# ``(the output layer's input (1, n, H), state for the next segment)`` (the first state is None).
Reader = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]


@dataclass(frozen=True)
class Batch:
    """One training minibatch: the arrays the model reads (token ids, ``(B, T)`` each, or flags)
    and whether its rows continue the previous batch's rows (then its state is carried over)."""

    arrays: tuple[np.ndarray, ...]
    continues: bool


def streamed_logprobs(
    stream: Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]],
    ids: torch.Tensor,
    bos_id: int,
    chunk_size: int,
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = gather_logprobs,
) -> torch.Tensor:
    """Score ``ids (N,)`` read as one stream from ``<bos>`` by ``stream(inputs (1, n), state)``.

    ``stream`` gives logits ``(1, n, V)`` scored by :func:`gather_logprobs`, or whatever ``score``
    turns with the targets ``(1, n)`` into float64 log-probabilities ``(1, n)`` (a model's last
    hidden layer and its output layer's :func:`~seqlm.neural.models.heads.head_target_logprobs`).

    The stream is read in chunks of ``chunk_size`` that carry the state, so every target sees all
    of the split before it (the chunking only bounds memory)::

        inputs:  <bos> x1 x2 ... x2047 | x2048 ... | ...      state carried across the bar
        targets:  x1   x2 x3 ... x2048 | x2049 ... | ...
    """
    inputs = torch.cat([ids.new_tensor([bos_id]), ids[:-1]])  # (N,) <bos> x1 .. x_{N-1}
    out = []
    state = None
    for start in range(0, ids.numel(), chunk_size):
        x = inputs[start : start + chunk_size].unsqueeze(0)  # (1, n)
        y = ids[start : start + chunk_size].unsqueeze(0)  # (1, n)
        logits, state = stream(x, state)  # (1, n, V), or what `score` reads
        out.append(score(logits, y)[0])
    return torch.cat(out)  # (N,)


class NeuralLM(nn.Module, ABC):
    """A neural LM over token ids ``0 .. vocab_size − 1`` with an output layer ``head`` (a linear
    map to the logits, or an adaptive softmax: :mod:`seqlm.neural.models.heads`)."""

    vocab_size: int
    net: NetParams
    embedding: nn.Embedding
    head: Head

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        return next(self.parameters()).device

    def init_output_bias(self, ids: np.ndarray) -> None:
        """Start the output layer's bias at the unigram log-frequencies of ``ids`` (add-one).

        The untrained model then predicts the unigram distribution instead of a uniform one, so
        the first steps are not spent learning token frequencies. An adaptive softmax gets the
        frequent ids' and each cluster's log-frequency in its head's bias
        (:func:`~seqlm.neural.models.heads.unigram_output_bias`). With ``net.init_range`` > 0 the
        bias is left as drawn: that recipe initialises every parameter uniformly; a transformer
        with ``net.bias`` false has no output bias to set.
        """
        if self.net.init_range or output_bias(self.head) is None:
            return
        counts = np.bincount(np.asarray(ids, dtype=np.int64), minlength=self.vocab_size) + 1.0
        unigram_output_bias(self.head, np.log(counts / counts.sum()))

    @abstractmethod
    def batch_unit(self, params: TrainParams) -> str:
        """What one row of a training batch is, for messages (e.g. ``rows of 64``)."""

    @abstractmethod
    def batches_per_epoch(self, num_ids: int, params: TrainParams) -> int:
        """How many training batches an epoch over a split of ``num_ids`` tokens has at most."""

    def checked_batches_per_epoch(self, num_ids: int, params: TrainParams) -> int:
        """:meth:`batches_per_epoch`, refusing a train split too short for one batch (DataError)."""
        per_epoch = self.batches_per_epoch(num_ids, params)
        if per_epoch < 1:
            raise DataError(
                f"the train split ({num_ids} tokens) is too short for one batch of "
                f"{params.batch_size} {self.batch_unit(params)}; lower train.batch_size or the "
                "window"
            )
        return per_epoch

    @abstractmethod
    def training_batches(
        self, ids: np.ndarray, bos_id: int, params: TrainParams, rng: random.Random
    ) -> Iterator[Batch]:
        """One epoch of training batches over a split's ``ids``, drawn with ``rng``."""

    @abstractmethod
    def batch_loss(self, batch: Batch, state: Any) -> tuple[torch.Tensor, int, Any]:
        """``(mean cross-entropy, number of targets, state for the next batch)`` of one batch.

        ``state`` is what the previous batch returned (``None`` at an epoch's start); the state
        returned is cut from the graph (truncated BPTT)."""

    @abstractmethod
    def split_logprobs(
        self, ids: torch.Tensor, bos_id: int, *, chunk_size: int, windows_per_batch: int
    ) -> torch.Tensor:
        """``log p(x_t | <bos>, x_1 .. x_{t-1})`` of every token of ``ids (N,)``: ``(N,)`` float64.

        ``chunk_size`` bounds the tokens a streaming model reads per call, ``windows_per_batch``
        the windows a windowed model reads per call (memory only: the numbers do not depend on
        them for a streaming model)."""

    @abstractmethod
    def stream_reader(self) -> Reader | None:
        """How the model reads a split as one stream, segment after segment, carrying its state
        (:data:`Reader`; dynamic evaluation learns between the segments), or None for a model that
        has no such stream."""
