"""The recurrent language model: embedding → stacked RNN/GRU/LSTM → linear head.

::

    idx (B, T) ──embedding──> (B, T, E) ──input dropout──> recurrent layers ──> (B, T, H)
        ──output dropout──> output layer ──> logits (B, T, V)      (state carried in and out)

The output layer is ``net.output``'s (:mod:`seqlm.neural.models.heads`): a linear map to the logits,
or an adaptive softmax, whose "logits" are already normalised log-probabilities.

The model reads left to right only: the logits at position ``t`` depend on ``idx[:, :t+1]`` and the
state passed in, never on later positions, so ``logits[:, t]`` is a distribution over the token that
follows ``idx[:, t]``.

It trains on the train split preceded by ``<bos>`` (as every split is read at evaluation), cut into
minibatches by the textbook's iterators (:mod:`seqlm.neural.batching`)::

    sequential (default): rows continue across batches, the state is carried and detached
        batch i:   row b = stream[o + b·L + i·T : ... + T]     (L = row length, T = num_steps)
        state after batch i ──detach──> initial state of batch i+1  (truncated BPTT)
    random: shuffled non-overlapping windows, every batch from the zero state
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn as nn

from seqlm.neural.batching import lm_batches, lm_batches_per_epoch
from seqlm.neural.models.base import Batch, NeuralLM, Reader, streamed_logprobs
from seqlm.neural.models.cells import State, make_recurrent
from seqlm.neural.models.heads import (
    Head,
    head_output,
    head_target_logprobs,
    init_head,
    make_head,
)
from seqlm.neural.models.regularization import embedding_dropout, locked_dropout, weight_dropped
from seqlm.neural.tensors import detached
from seqlm.params import RECURRENT_MODELS, NetParams, TrainParams, check_net_for_model


def init_embedding_and_head(embedding: nn.Embedding, head: Head, tie: bool) -> None:
    """Embedding and output weights uniform in ±0.1, output bias zero; with ``tie`` the output layer
    shares the embedding matrix (``(V, H)`` with ``(V, E)``, E == H). An adaptive softmax keeps
    torch's initialisation of its weights (its head's bias zero) and is never tied."""
    nn.init.uniform_(embedding.weight, -0.1, 0.1)
    if not isinstance(head, nn.Linear):
        init_head(head)
        return
    nn.init.uniform_(head.weight, -0.1, 0.1)
    nn.init.zeros_(head.bias)
    if tie:
        head.weight = embedding.weight


def init_uniform(model: nn.Module, bound: float) -> None:
    """With ``bound`` > 0 (``net.init_range``), every parameter uniform in ±``bound``, drawn in
    ``model.parameters()`` order (a tied matrix once); 0 leaves the model as it is."""
    if bound > 0:
        for p in model.parameters():
            nn.init.uniform_(p, -bound, bound)


class RecurrentLM(NeuralLM):
    """A left-to-right language model over token ids ``0 .. vocab_size − 1``."""

    def __init__(self, mode: str, vocab_size: int, net: NetParams) -> None:
        super().__init__()
        check_net_for_model(mode, net)
        if mode not in RECURRENT_MODELS:
            raise ValueError(f"RecurrentLM needs one of {RECURRENT_MODELS}, got {mode!r}")
        self.mode = mode
        self.vocab_size = vocab_size
        self.net = net
        self.embedding = nn.Embedding(vocab_size, net.embedding_size)
        self.rnn = make_recurrent(
            mode, net.cell, net.embedding_size, net.hidden_size, net.num_layers, net.dropout
        )
        self.head = make_head(net, vocab_size)
        init_embedding_and_head(self.embedding, self.head, net.tie_weights)
        init_uniform(self, net.init_range)

    def features(self, idx: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """``idx (B, T)`` → ``(the output layer's input (B, T, H), final state)``."""
        net = self.net
        x = embedding_dropout(self.embedding, idx, net.embedding_dropout, self.training)  # (B,T,E)
        x = locked_dropout(x, net.input_dropout, self.training, net.locked)
        out, state = weight_dropped(self.rnn, net.weight_drop, self.training, x, state)  # (B, T, H)
        return locked_dropout(out, net.output_dropout, self.training, net.locked), state

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, state: State | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, State]:
        """``idx (B, T)`` → ``(logits (B, T, V), mean cross-entropy or None, final state)``.

        With the adaptive softmax the logits are log-probabilities, and are not computed (None)
        when ``targets`` are given: its loss reads only each target's cluster.
        """
        out, state = self.features(idx, state)
        logits, loss = head_output(self.head, out, targets)  # (B, T, V) or None, loss or None
        return logits, loss, state

    def stream(self, inputs: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """Read the next stream inputs ``(B, n)`` (the first ever is ``<bos>``): ``(B, n, V)``."""
        logits, _, state = self(inputs, state=state)
        assert logits is not None
        return logits, state

    # --- the NeuralLM interface -----------------------------------------------------------------

    def stream_reader(self) -> Reader:
        """:meth:`features`: the stream read on from the recurrent state."""
        return self.features

    def batch_unit(self, params: TrainParams) -> str:
        return f"rows of {params.num_steps}"

    def batches_per_epoch(self, num_ids: int, params: TrainParams) -> int:
        return lm_batches_per_epoch(num_ids + 1, params)  # the stream starts with <bos>

    def training_batches(
        self, ids: np.ndarray, bos_id: int, params: TrainParams, rng: random.Random
    ) -> Iterator[Batch]:
        stream = np.concatenate([[bos_id], np.asarray(ids, dtype=np.int64)])
        continues = params.sampling != "random"
        for x, y in lm_batches(stream, params, rng):
            yield Batch((x, y), continues)

    def batch_loss(
        self, batch: Batch, state: State | None
    ) -> tuple[torch.Tensor, int, State | None]:
        x, y = (torch.as_tensor(a, dtype=torch.long, device=self.device) for a in batch.arrays)
        _, loss, state = self(x, targets=y, state=state if batch.continues else None)
        assert loss is not None
        return loss, y.numel(), detached(state)  # the graph cut at the BPTT window's end

    def split_logprobs(
        self, ids: torch.Tensor, bos_id: int, *, chunk_size: int, windows_per_batch: int
    ) -> torch.Tensor:
        def score(hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return head_target_logprobs(self.head, hidden, targets)

        return streamed_logprobs(self.features, ids, bos_id, chunk_size, score)
