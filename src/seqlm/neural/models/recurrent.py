"""The recurrent language model: embedding → stacked RNN/GRU/LSTM → linear head.

::

    idx (B, T) ──embedding──> (B, T, E) ──input dropout──> recurrent layers ──> (B, T, H)
        ──output dropout──> linear ──> logits (B, T, V)      (state carried in and out)

The model reads left to right only: the logits at position ``t`` depend on ``idx[:, :t+1]`` and the
state passed in, never on later positions, so ``logits[:, t]`` is a distribution over the token that
follows ``idx[:, t]``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from seqlm.neural.models.cells import State, make_recurrent
from seqlm.params import RECURRENT_MODELS, NetParams, check_net_for_model
from seqlm.neural.models.regularization import embedding_dropout, locked_dropout, weight_dropped


def detach_state(state: State | None) -> State | None:
    """Cut the graph at a BPTT window boundary, keeping the values."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)  # type: ignore[return-value]
    return state.detach()


def init_embedding_and_head(embedding: nn.Embedding, head: nn.Linear, tie: bool) -> None:
    """Embedding and output weights uniform in ±0.1, output bias zero; with ``tie`` the output layer
    shares the embedding matrix (``(V, H)`` with ``(V, E)``, E == H)."""
    nn.init.uniform_(embedding.weight, -0.1, 0.1)
    nn.init.uniform_(head.weight, -0.1, 0.1)
    nn.init.zeros_(head.bias)
    if tie:
        head.weight = embedding.weight


class RecurrentLM(nn.Module):
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
        self.head = nn.Linear(net.hidden_size, vocab_size)
        init_embedding_and_head(self.embedding, self.head, net.tie_weights)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, state: State | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, State]:
        """``idx (B, T)`` → ``(logits (B, T, V), mean cross-entropy or None, final state)``."""
        net = self.net
        x = embedding_dropout(self.embedding, idx, net.embedding_dropout, self.training)  # (B,T,E)
        x = locked_dropout(x, net.input_dropout, self.training, net.locked)
        out, state = weight_dropped(self.rnn, net.weight_drop, self.training, x, state)  # (B, T, H)
        out = locked_dropout(out, net.output_dropout, self.training, net.locked)
        logits = self.head(out)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1))
        return logits, loss, state

    def stream(self, inputs: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """Read the next stream inputs ``(B, n)`` (the first ever is ``<bos>``): ``(B, n, V)``."""
        logits, _, state = self(inputs, state=state)
        return logits, state
