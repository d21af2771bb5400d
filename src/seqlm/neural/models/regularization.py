"""Regularisers for small corpora, after AWD-LSTM (Merity et al., 2018).

* :func:`locked_dropout`: variational dropout, one mask per sequence shared by every time step::

      x (B, T, C):  mask (B, 1, C) broadcast over T — a unit that is off is off for the whole window

* :func:`embedding_dropout`: drops whole rows of the embedding matrix, i.e. every occurrence of a
  token in the batch at once (``dropoute``);
* :func:`weight_dropped`: DropConnect on hidden-to-hidden weights, one mask per forward pass,
  applied through ``torch.func.functional_call`` so it works with torch's fused ``nn.LSTM`` as is.
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

HIDDEN_WEIGHT = re.compile(r"^weight_hh_l\d+(_reverse)?$")


def locked_dropout(x: torch.Tensor, p: float, training: bool, locked: bool = True) -> torch.Tensor:
    """Dropout on ``x (B, T, C)``; with ``locked`` the same mask at every time step."""
    if not training or p == 0.0:
        return x
    if not locked:
        return F.dropout(x, p, training=True)
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)  # (B, 1, C)
    return x * mask  # (B, T, C)


def embedding_dropout(
    embedding: nn.Embedding, idx: torch.Tensor, p: float, training: bool
) -> torch.Tensor:
    """Look up ``idx (B, T)`` in ``embedding`` with whole rows dropped with probability ``p``."""
    if not training or p == 0.0:
        return embedding(idx)  # (B, T, E)
    weight = embedding.weight
    keep = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)  # (V, 1)
    return F.embedding(idx, weight * keep)  # (B, T, E)


def weight_dropped(
    rnn: nn.Module, p: float, training: bool, *args: object
) -> tuple[torch.Tensor, object]:
    """Call ``rnn(*args)`` with DropConnect (probability ``p``) on its ``weight_hh_l{k}``."""
    if not training or p == 0.0:
        return rnn(*args)
    params = {
        name: F.dropout(w, p, training=True) if HIDDEN_WEIGHT.match(name) else w
        for name, w in rnn.named_parameters()
    }
    return functional_call(rnn, params, args)
