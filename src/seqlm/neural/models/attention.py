"""The transformer's blocks: causal multi-head self-attention, rotary positions, the MLP.

A pre-norm block (Xiong et al. 2020; GPT-2) adds each sublayer's output to its input::

    x ─┬─ LayerNorm ─ causal self-attention ─ dropout ─(+)─┬─ LayerNorm ─ MLP ─ dropout ─(+)─>
       └───────────────────────────────────────────────────┘└───────────────────────────────┘

Attention is ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)``: position ``t``
attends to positions ``0 .. t`` of its window only, so the output at ``t`` never depends on later
tokens. With rotary positions (Su et al. 2021, RoFormer) each head's queries and keys are turned
pair of dimensions by pair of dimensions by an angle proportional to their position, so the score
of query ``t`` and key ``s`` depends on ``t − s`` only.

With ``shift`` (``net.token_shift``; RWKV's token shift, Peng et al. 2023) each sublayer reads the
second half of its normalised input's channels from the position before, zeros at a window's
first position::

    LayerNorm(x)[t] = (a_t, b_t)  ──>  (a_t, b_{t−1})    (b_{−1} = 0)

so every position sees the previous token's features without attending to it. It has no
parameters and keeps attention causal: the output at ``t`` reads positions ``0 .. t`` only.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from seqlm.neural.models.regularization import Dropout

ROTARY_BASE = 10000.0


class Rotary(nn.Module):
    """Rotary position embedding of a head width ``dim`` (even): ``(B, h, T, D) → (B, h, T, D)``.

    Dimensions ``i`` and ``i + D/2`` form a pair turned by the angle ``t · base^(−2i/D)`` at
    position ``t`` (the "rotate half" layout). The angles are computed in float32 and the result
    is cast back to the input's dtype (bf16 under autocast)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"rotary positions need an even head width, got {dim}")
        inv_freq = ROTARY_BASE ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (D/2,)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.arange(x.shape[-2], device=x.device, dtype=torch.float32)  # (T,)
        angles = torch.outer(t, self.inv_freq.to(x.device))  # (T, D/2)
        cos, sin = angles.cos(), angles.sin()  # (T, D/2)
        x1, x2 = x.float().chunk(2, dim=-1)  # (B, h, T, D/2) each
        turned = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)  # (B, h, T, D)
        return turned.to(x.dtype)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention over ``(B, T, H)``, ``heads`` heads of ``H / heads``.

    ``dropout`` acts on its output (before the residual add), not on the attention weights: with
    dropout on the weights torch's CPU attention falls back to a path about three times slower."""

    def __init__(
        self, width: int, heads: int, dropout: float, rotary: bool, bias: bool = True
    ) -> None:
        super().__init__()
        assert width % heads == 0, "checked by check_net_for_model"
        self.heads = heads
        # queries, keys and values of every head at once, without bias: a key bias adds the same
        # to every score of a query (softmax ignores it: its gradient is zero, so Adam would
        # follow rounding noise) and a value bias adds a constant that the projection's bias has
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width, bias=bias)  # the residual projection
        self.rotary = Rotary(width // heads) if rotary else None
        self.resid_dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=-1)  # (B, T, H) each
        q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in (q, k, v))  # (B, h, T, D)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, h, T, D)
        y = y.transpose(1, 2).reshape(b, t, width)  # (B, T, H)
        return self.resid_dropout(self.proj(y))


def shift_half(h: torch.Tensor) -> torch.Tensor:
    """``(B, T, H) → (B, T, H)``: the first ``H // 2`` channels kept, the rest moved one position
    later (position 0 gets zeros): the token shift of the module docstring."""
    half = h.shape[-1] // 2
    moved = F.pad(h[..., half:], (0, 0, 1, 0))[:, :-1]  # (B, T, H − H // 2): position t − 1's
    return torch.cat([h[..., :half], moved], dim=-1)


class Block(nn.Module):
    """One pre-norm transformer block: attention then a GELU MLP of width ``4 H``; without
    ``bias`` neither its linear layers nor its LayerNorms have a bias (nanoGPT's ``bias = False``);
    with ``shift`` each sublayer reads its input token-shifted (:func:`shift_half`)."""

    def __init__(
        self,
        width: int,
        heads: int,
        dropout: float,
        rotary: bool,
        bias: bool = True,
        shift: bool = False,
    ) -> None:
        super().__init__()
        self.shift = shift
        self.norm1 = nn.LayerNorm(width, bias=bias)
        self.attention = CausalSelfAttention(width, heads, dropout, rotary, bias)
        self.norm2 = nn.LayerNorm(width, bias=bias)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width, bias=bias),
            nn.GELU(),
            nn.Linear(4 * width, width, bias=bias),  # the residual projection
            Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self._read(self.norm1(x)))  # (B, T, H)
        return x + self.mlp(self._read(self.norm2(x)))  # (B, T, H)

    def _read(self, h: torch.Tensor) -> torch.Tensor:
        return shift_half(h) if self.shift else h

    def residual_projections(self) -> tuple[nn.Linear, nn.Linear]:
        """The two layers whose outputs are added to the residual stream."""
        out = self.mlp[2]
        assert isinstance(out, nn.Linear)
        return self.attention.proj, out


def init_transformer_weights(model: nn.Module, blocks: list[Block], std: float = 0.02) -> None:
    """GPT-2's initialisation: every linear and embedding weight normal(0, ``std``), biases zero,
    LayerNorms the identity; the residual projections normal(0, ``std / sqrt(2 L)``) so that the
    residual stream's variance does not grow with the number of layers ``L``."""
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, 0.0, std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    for block in blocks:
        for layer in block.residual_projections():
            nn.init.normal_(layer.weight, 0.0, std / math.sqrt(2 * len(blocks)))
