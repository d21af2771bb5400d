"""Regularisers for small corpora, after AWD-LSTM (Merity et al., 2018).

* :func:`locked_dropout`: variational dropout, one mask per sequence shared by every time step::

      x (B, T, C):  mask (B, 1, C) broadcast over T — a unit that is off is off for the whole window

* :func:`embedding_dropout`: drops whole rows of the embedding matrix, i.e. every occurrence of a
  token in the batch at once (``dropoute``);
* :func:`weight_dropped`: DropConnect on hidden-to-hidden weights, one mask per forward pass,
  applied through ``torch.func.functional_call`` so it works with torch's fused ``nn.LSTM`` as is.

Every mask is :func:`keep_noise`: on a CPU the masks ``bernoulli_`` would draw, from the same
generator draws, in half its time (a float64 uniform below the keep probability is exactly how
``bernoulli_`` decides each element there, one draw an element in the same order; it is tested
against ``bernoulli_`` and ``F.dropout``); so :func:`dropout` is ``F.dropout``, number for number,
and every figure trained before stays as it was. DropConnect on the default LSTM's 512 × 2048
hidden weights drew its mask in ~9 ms a step of ~64 (``benchmarks/bench_roofline.py``); now ~5.
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

HIDDEN_WEIGHT = re.compile(r"^weight_hh_l\d+(_reverse)?$")


def keep_noise(like: torch.Tensor, keep: float) -> torch.Tensor:
    """Dropout's noise in ``like``'s shape, dtype and layout: ``1 / keep`` where an element is
    kept (probability ``keep``), else 0 — what ``torch.empty_like(like).bernoulli_(keep)
    .div_(keep)`` gives, from the same generator draws (module docstring); on a GPU, that."""
    if like.device.type != "cpu":
        return torch.empty_like(like).bernoulli_(keep).div_(keep)
    uniform = torch.empty_like(like, dtype=torch.float64).uniform_()  # a draw an element
    return (uniform < keep).to(like.dtype).div_(keep)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``F.dropout(x, p, training)``, the same numbers from the same draws, its mask drawn by
    :func:`keep_noise`."""
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return x * keep_noise(x, 1 - p)


class Dropout(nn.Module):
    """``nn.Dropout`` through :func:`dropout` (no parameters: a ``state_dict`` is unchanged)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def locked_dropout(x: torch.Tensor, p: float, training: bool, locked: bool = True) -> torch.Tensor:
    """Dropout on ``x (B, T, C)``; with ``locked`` the same mask at every time step."""
    if not training or p == 0.0:
        return x
    if not locked:
        return dropout(x, p)
    mask = keep_noise(x.new_empty(x.shape[0], 1, x.shape[2]), 1 - p)  # (B, 1, C)
    return x * mask  # (B, T, C)


def embedding_dropout(
    embedding: nn.Embedding, idx: torch.Tensor, p: float, training: bool
) -> torch.Tensor:
    """Look up ``idx (B, T)`` in ``embedding`` with whole rows dropped with probability ``p``."""
    if not training or p == 0.0:
        return embedding(idx)  # (B, T, E)
    weight = embedding.weight
    keep = keep_noise(weight.new_empty(weight.shape[0], 1), 1 - p)  # (V, 1)
    return F.embedding(idx, weight * keep)  # (B, T, E)


def weight_dropped(
    rnn: nn.Module, p: float, training: bool, *args: object
) -> tuple[torch.Tensor, object]:
    """Call ``rnn(*args)`` with DropConnect (probability ``p``) on its ``weight_hh_l{k}``."""
    if not training or p == 0.0:
        return rnn(*args)
    params = {
        name: dropout(w, p) if HIDDEN_WEIGHT.match(name) else w
        for name, w in rnn.named_parameters()
    }
    return functional_call(rnn, params, args)
