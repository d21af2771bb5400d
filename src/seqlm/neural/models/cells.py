"""Recurrent cells written out from the notes' equations, as a drop-in for ``nn.RNN/GRU/LSTM``.

The equations (``x_t`` the input, ``h_{t-1}`` the previous hidden state, ``⊙`` elementwise)::

    RNN    h_t = tanh(W_xh x_t + b_xh + W_hh h_{t-1} + b_hh)

    LSTM   i_t = σ(W^i_xh x_t + b^i_xh + W^i_hh h_{t-1} + b^i_hh)        input gate
           f_t = σ(W^f_xh x_t + b^f_xh + W^f_hh h_{t-1} + b^f_hh)        forget gate
           u_t = tanh(W^u_xh x_t + b^u_xh + W^u_hh h_{t-1} + b^u_hh)     candidate
           o_t = σ(W^o_xh x_t + b^o_xh + W^o_hh h_{t-1} + b^o_hh)        output gate
           c_t = f_t ⊙ c_{t-1} + i_t ⊙ u_t
           h_t = o_t ⊙ tanh(c_t)

    GRU    r_t = σ(W^r_xh x_t + b^r_xh + W^r_hh h_{t-1} + b^r_hh)        reset gate
           z_t = σ(W^z_xh x_t + b^z_xh + W^z_hh h_{t-1} + b^z_hh)        update gate
           n_t = tanh(W^n_xh x_t + b^n_xh + r_t ⊙ (W^n_hh h_{t-1} + b^n_hh))
           h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t-1}

Parameters are laid out exactly as torch lays them out, so a ``state_dict`` moves between
:class:`ScratchRecurrent` and ``nn.RNN/GRU/LSTM`` unchanged: for layer ``k`` (suffix ``_reverse``
for the backward direction) ``weight_ih_l{k}`` is ``W_xh`` of every gate stacked, ``(G·H, input)``,
``weight_hh_l{k}`` is ``W_hh``, ``(G·H, H)``, and ``bias_ih_l{k}``, ``bias_hh_l{k}`` the biases, in
torch's gate order — LSTM ``i, f, u (torch's g), o``; GRU ``r, z, n``; RNN a single block.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from seqlm.neural.models.regularization import dropout

GATES = {"rnn": 1, "gru": 3, "lstm": 4}

Tensor = torch.Tensor
State = Tensor | tuple[Tensor, Tensor]


def rnn_cell(xw: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor) -> Tensor:
    """One RNN step. ``xw = W_xh x_t + b_xh`` (computed for all steps at once), ``(B, H)``."""
    return torch.tanh(xw + F.linear(h, w_hh, b_hh))  # (B, H)


def lstm_cell(
    xw: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor
) -> tuple[Tensor, Tensor]:
    """One LSTM step. ``xw = W_xh x_t + b_xh`` for the four gates, ``(B, 4H)``."""
    gates = xw + F.linear(h, w_hh, b_hh)  # (B, 4H)
    i, f, u, o = gates.chunk(4, dim=1)  # each (B, H), torch's order i, f, g, o
    i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
    u = torch.tanh(u)
    c = f * c + i * u  # (B, H)
    h = o * torch.tanh(c)  # (B, H)
    return h, c


def gru_cell(xw: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor) -> Tensor:
    """One GRU step. ``xw = W_xh x_t + b_xh`` for the three gates, ``(B, 3H)``."""
    hw = F.linear(h, w_hh, b_hh)  # (B, 3H)
    x_r, x_z, x_n = xw.chunk(3, dim=1)
    h_r, h_z, h_n = hw.chunk(3, dim=1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h  # (B, H)


class ScratchRecurrent(nn.Module):
    """Stacked (optionally bidirectional) RNN/GRU/LSTM from the cell equations, batch first.

    Same constructor arguments, parameters, inputs and outputs as
    ``nn.RNN/GRU/LSTM(batch_first=True)``: ``forward(x (B, T, I), state) -> (output (B, T, D·H),
    state)`` with ``state`` ``(L·D, B, H)``, a pair ``(h, c)`` for the LSTM, ``D`` = 2 when
    bidirectional.
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        if mode not in GATES:
            raise ValueError(f"mode {mode!r} is not one of {', '.join(GATES)}")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        gate_size = GATES[mode] * hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * self.num_directions
            for suffix in self._suffixes():
                self.register_parameter(
                    f"weight_ih_l{layer}{suffix}", nn.Parameter(torch.empty(gate_size, layer_input))
                )
                self.register_parameter(
                    f"weight_hh_l{layer}{suffix}", nn.Parameter(torch.empty(gate_size, hidden_size))
                )
                for name in (f"bias_ih_l{layer}{suffix}", f"bias_hh_l{layer}{suffix}"):
                    self.register_parameter(name, nn.Parameter(torch.empty(gate_size)))
        self.reset_parameters()

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def reset_parameters(self) -> None:
        """torch's initialisation: every weight uniform in ±1/√H."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def zero_state(self, batch_size: int, like: Tensor) -> State:
        h = like.new_zeros(self.num_layers * self.num_directions, batch_size, self.hidden_size)
        return (h, h.clone()) if self.mode == "lstm" else h

    def _run_direction(
        self, x: Tensor, h: Tensor, c: Tensor | None, layer: int, suffix: str, reverse: bool
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One layer, one direction over the whole sequence: ``x (B, T, I) -> out (B, T, H)``."""
        w_ih = getattr(self, f"weight_ih_l{layer}{suffix}")
        w_hh = getattr(self, f"weight_hh_l{layer}{suffix}")
        b_ih = getattr(self, f"bias_ih_l{layer}{suffix}")
        b_hh = getattr(self, f"bias_hh_l{layer}{suffix}")
        xw = F.linear(x, w_ih, b_ih)  # (B, T, G·H): the input term of every step at once
        steps = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
        outputs: list[Tensor] = [x.new_empty(0)] * x.shape[1]
        for t in steps:
            if self.mode == "lstm":
                assert c is not None
                h, c = lstm_cell(xw[:, t], h, c, w_hh, b_hh)
            elif self.mode == "gru":
                h = gru_cell(xw[:, t], h, w_hh, b_hh)
            else:
                h = rnn_cell(xw[:, t], h, w_hh, b_hh)
            outputs[t] = h
        if not outputs:
            return x.new_zeros(x.shape[0], 0, self.hidden_size), h, c
        out = torch.stack(outputs, dim=1)
        return out, h, c  # (B, T, H), (B, H), (B, H) | None

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        batch_size = x.shape[0]
        if state is None:
            state = self.zero_state(batch_size, x)
        if self.mode == "lstm":
            h0, c0 = state  # (L·D, B, H) each
        else:
            h0, c0 = state, None  # type: ignore[assignment]
        h_n: list[Tensor] = []
        c_n: list[Tensor] = []
        layer_input = x  # (B, T, I)
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(self._suffixes()):
                k = layer * self.num_directions + d
                out, h, c = self._run_direction(
                    layer_input, h0[k], None if c0 is None else c0[k], layer, suffix, reverse=d == 1
                )
                outs.append(out)
                h_n.append(h)
                if c is not None:
                    c_n.append(c)
            layer_input = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]  # (B, T, D·H)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = dropout(layer_input, self.dropout)
        h_stack = torch.stack(h_n)  # (L·D, B, H)
        if self.mode == "lstm":
            return layer_input, (h_stack, torch.stack(c_n))
        return layer_input, h_stack


def make_recurrent(
    mode: str,
    cell: str,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    dropout: float = 0.0,
    bidirectional: bool = False,
) -> nn.Module:
    """``nn.RNN/GRU/LSTM`` (``cell="fused"``) or :class:`ScratchRecurrent` (``cell="scratch"``)."""
    if cell == "scratch":
        return ScratchRecurrent(mode, input_size, hidden_size, num_layers, dropout, bidirectional)
    if cell != "fused":
        raise ValueError(f"cell {cell!r} is not one of fused, scratch")
    torch_class = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[mode]
    return torch_class(
        input_size,
        hidden_size,
        num_layers,
        batch_first=True,
        dropout=dropout if num_layers > 1 else 0.0,
        bidirectional=bidirectional,
    )
