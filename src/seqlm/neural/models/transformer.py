"""A decoder-only transformer language model (GPT-style), over a context of ``C = net.context``.

::

    idx (B, T ≤ C) ──embedding──> (B, T, E) ──[linear E → H if E ≠ H]──> (+ learned positions)
        ──input dropout──> L × pre-norm block (:mod:`~seqlm.neural.models.attention`)
        ──LayerNorm──> output dropout ──> output layer ──> logits (B, T, V)

Position ``t`` attends to positions ``0 .. t`` of its window only (causal attention), so
``logits[:, t]`` is a distribution over the token that follows ``idx[:, t]`` given the window's
tokens up to ``t``. Positions are ``learned`` (a ``(C, H)`` table added to the embeddings: a
window's first token is position 0) or ``rotary`` (queries and keys turned by their position).

Training (no state carried): windows of ``T = train.num_steps`` (at most ``C``) tokens of the
train split preceded by ``<bos>``, each row predicting its next tokens, drawn by the recurrent
models' iterators (:mod:`seqlm.neural.batching`): ``sequential`` gives the windows in order (row
``b`` of batch ``i + 1`` continues row ``b`` of batch ``i``, but the model starts every window
afresh), ``random`` shuffles them. Learned positions beyond ``T`` are never trained: keep
``train.num_steps == net.context`` unless positions are rotary.

Scoring (:func:`sliding_window_logprobs`): every target once, from the split's start (``<bos>``
first), by windows of ``C`` inputs advanced by a stride ``S = max(C // 2, 1)``::

    inputs:   <bos> x1 x2 x3 x4 x5 x6 x7 x8 x9 ...           (C = 4, S = 2)
    window 0: <bos> x1 x2 x3        scores x1 x2 x3 x4       (all of it: context from <bos>)
    window 1:       x2 x3 x4 x5     scores       x5 x6       (its last S positions)
    window 2:             x4 x5 x6 x7  scores       x7 x8

so a target of window ``k ≥ 1`` is predicted from the ``C − S + 1 .. C`` inputs before it (the
token right before it included), at least ``C / 2``. Generation (:meth:`TransformerLM.stream`)
predicts each next token from the last ``C`` inputs.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn

from seqlm.core.errors import ParamError
from seqlm.neural.batching import lm_batches, lm_batches_per_epoch
from seqlm.neural.models.attention import Block, init_transformer_weights
from seqlm.neural.models.base import Batch, NeuralLM, Reader
from seqlm.neural.models.heads import (
    head_output,
    head_target_logprobs,
    make_head,
)
from seqlm.neural.models.recurrent import init_uniform
from seqlm.neural.models.regularization import embedding_dropout, locked_dropout
from seqlm.params import NetParams, TrainParams, check_net_for_model

log = logging.getLogger(__name__)


def scoring_stride(context: int) -> int:
    """How far the scoring windows advance: ``S = max(C // 2, 1)``."""
    return max(context // 2, 1)


def sliding_window_logprobs(
    features: Callable[[torch.Tensor], torch.Tensor],
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ids: torch.Tensor,
    bos_id: int,
    context: int,
    windows_per_batch: int,
) -> torch.Tensor:
    """``log p(x_t | …)`` of every token of ``ids (N,)`` by windows of ``context`` inputs
    (module docstring): ``(N,)`` float64.

    ``features(windows (b, c))`` gives the output layer's input ``(b, c, H)``, ``score(hidden,
    targets)`` the float64 log-probabilities of the targets. The windows are read
    ``windows_per_batch`` at a time; the last is padded at its end, which no earlier position
    sees (causal attention), and the padding's scores are dropped.
    """
    n = ids.numel()
    inputs = torch.cat([ids.new_tensor([bos_id]), ids[:-1]])  # (N,) <bos> x1 .. x_{N-1}
    width = min(context, n)  # one window of N inputs when the split fits in the context
    stride = scoring_stride(context)
    num_windows = 1 + -(-(n - width) // stride)
    length = (num_windows - 1) * stride + width  # >= N
    padded_in = torch.full((length,), bos_id, dtype=ids.dtype, device=ids.device)
    padded_in[:n] = inputs
    padded_tgt = torch.full_like(padded_in, bos_id)
    padded_tgt[:n] = ids
    windows = padded_in.unfold(0, width, stride)  # (K, c): window k = inputs[k S : k S + c]
    targets = padded_tgt.unfold(0, width, stride)  # (K, c)
    new = width - stride  # a later window scores its positions new .. c − 1
    out = []
    for start in range(0, num_windows, windows_per_batch):
        sl = slice(start, start + windows_per_batch)
        hidden = features(windows[sl])  # (b, c, H)
        tgt = targets[sl]  # (b, c)
        if start == 0:  # window 0 scores all its positions, from <bos>
            out.append(score(hidden[:1], tgt[:1]).reshape(-1))
            hidden, tgt = hidden[1:], tgt[1:]
        if hidden.shape[0]:
            out.append(score(hidden[:, new:], tgt[:, new:]).reshape(-1))  # (b · S,)
    return torch.cat(out)[:n]  # (N,)


class TransformerLM(NeuralLM):
    """A decoder-only transformer over token ids ``0 .. vocab_size − 1`` (module docstring)."""

    def __init__(self, vocab_size: int, net: NetParams) -> None:
        super().__init__()
        check_net_for_model("transformer", net)
        self.mode = "transformer"
        self.vocab_size = vocab_size
        self.net = net
        self.context = net.context
        width = net.hidden_size
        self.embedding = nn.Embedding(vocab_size, net.embedding_size)
        self.project = (
            nn.Linear(net.embedding_size, width, bias=False)
            if net.embedding_size != width
            else nn.Identity()
        )
        self.position = nn.Embedding(net.context, width) if net.positions == "learned" else None
        rotary = net.positions == "rotary"
        self.blocks = nn.ModuleList(
            Block(width, net.heads, net.dropout, rotary, net.bias, net.token_shift)
            for _ in range(net.num_layers)
        )
        self.norm = nn.LayerNorm(width, bias=net.bias)
        self.head = make_head(net, vocab_size)
        init_transformer_weights(self, list(self.blocks))  # type: ignore[arg-type]
        if net.tie_weights:
            assert isinstance(self.head, nn.Linear), "tying an adaptive softmax is refused"
            self.head.weight = self.embedding.weight
        init_uniform(self, net.init_range)

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        """``idx (B, T)``, ``T <= C`` → the output layer's input ``(B, T, H)``."""
        net = self.net
        if idx.shape[1] > self.context:
            raise ValueError(
                f"a window of {idx.shape[1]} tokens exceeds the context {self.context}"
            )
        x = embedding_dropout(self.embedding, idx, net.embedding_dropout, self.training)  # (B,T,E)
        x = self.project(x)  # (B, T, H)
        if self.position is not None:
            x = x + self.position.weight[: idx.shape[1]]  # (B, T, H) + (T, H)
        x = locked_dropout(x, net.input_dropout, self.training, net.locked)
        for block in self.blocks:
            x = block(x)  # (B, T, H)
        x = self.norm(x)
        return locked_dropout(x, net.output_dropout, self.training, net.locked)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``idx (B, T)`` → ``(logits (B, T, V), mean cross-entropy or None)``.

        With the adaptive softmax the logits are log-probabilities, and are not computed (None)
        when ``targets`` are given: its loss reads only each target's cluster.
        """
        return head_output(self.head, self.features(idx), targets)

    def _logits(self, idx: torch.Tensor) -> torch.Tensor:
        logits, _ = self(idx)
        assert logits is not None
        return logits  # (B, T, V)

    def stream(
        self, inputs: torch.Tensor, state: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Read the next stream inputs ``(B, n)`` (the first ever is ``<bos>``): ``(B, n, V)``.

        Each input's logits are predicted from the last ``C`` inputs up to it (fewer at the
        stream's start). The state is the last ``C − 1`` inputs read (all, while fewer)."""
        c = self.context
        history = inputs if state is None else torch.cat([state, inputs], dim=1)  # (B, m + n)
        m, total = history.shape[1] - inputs.shape[1], history.shape[1]
        out = []
        if m < c:  # inputs m .. min(C, total) − 1 see all of the history before them
            out.append(self._logits(history[:, : min(c, total)])[:, m:])
        first_later = max(m, c)  # input i >= C sees history[i − C + 1 : i + 1]
        if first_later < total:
            windows = history.unfold(1, c, 1)[:, first_later - c + 1 :]  # (B, k, C)
            b, k, _ = windows.shape
            last = self._logits(windows.reshape(b * k, c))[:, -1]  # (B · k, V)
            out.append(last.view(b, k, -1))
        kept = history[:, total - min(c - 1, total) :]  # (B, ≤ C − 1)
        return torch.cat(out, dim=1), kept

    def stream_features(
        self, inputs: torch.Tensor, state: tuple[torch.Tensor, int] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, int]]:
        """The output layer's input ``(B, n, H)`` for the next stream inputs ``(B, n)`` (the first
        ever is ``<bos>``), each computed in the window :func:`sliding_window_logprobs` scores it
        in, so a stream read in segments gets the same context as the split scored at once.

        Input ``p`` (0-based from the stream's start) is read in window 0 (inputs ``0 .. C − 1``)
        if ``p < C``, else in window ``k = (p − C) // S + 1`` (inputs ``kS .. kS + C − 1``, cut at
        the segment's end: by causality the positions read are unchanged). The state is the last
        ``C − 1`` inputs read and the count of inputs read so far. Dynamic evaluation reads the
        stream this way, learning between segments (:mod:`seqlm.neural.dynamic`)."""
        c, stride = self.context, scoring_stride(self.context)
        history, start = (inputs[:, :0], 0) if state is None else state
        seq = torch.cat([history, inputs], dim=1)  # inputs base .. end − 1 of the stream
        base, end = start - history.shape[1], start + inputs.shape[1]
        out = []
        p = start
        while p < end:
            first = 0 if p < c else ((p - c) // stride + 1) * stride  # its window's first input
            stop = min(first + c, end)
            hidden = self.features(seq[:, first - base : stop - base])  # (B, ≤ C, H)
            out.append(hidden[:, p - first :])  # positions p .. stop − 1
            p = stop
        kept = seq[:, seq.shape[1] - min(c - 1, end) :]  # (B, ≤ C − 1)
        return torch.cat(out, dim=1), (kept, end)

    # --- the NeuralLM interface -----------------------------------------------------------------

    def stream_reader(self) -> Reader:
        """:meth:`stream_features`: each input read in the window the static scorer reads it in."""
        return self.stream_features

    def _check_steps(self, params: TrainParams) -> None:
        if params.num_steps > self.context:
            raise ParamError(
                f"train.num_steps = {params.num_steps} exceeds net.context = {self.context}: the "
                f"transformer trains on windows of num_steps tokens and attends over at most "
                f"context; lower num_steps or raise context"
            )

    def batch_unit(self, params: TrainParams) -> str:
        return f"windows of {params.num_steps}"

    def batches_per_epoch(self, num_ids: int, params: TrainParams) -> int:
        self._check_steps(params)
        if self.net.positions == "learned" and params.num_steps < self.context:
            log.warning(
                "train.num_steps = %d < net.context = %d: learned positions %d .. %d are never "
                "trained but are read when scoring; set num_steps = context or use rotary",
                params.num_steps,
                self.context,
                params.num_steps,
                self.context - 1,
            )
        return lm_batches_per_epoch(num_ids + 1, params)  # the stream starts with <bos>

    def training_batches(
        self, ids: np.ndarray, bos_id: int, params: TrainParams, rng: random.Random
    ) -> Iterator[Batch]:
        self._check_steps(params)
        stream = np.concatenate([[bos_id], np.asarray(ids, dtype=np.int64)])
        for x, y in lm_batches(stream, params, rng):
            yield Batch((x, y), continues=False)

    def batch_loss(self, batch: Batch, state: None) -> tuple[torch.Tensor, int, None]:
        x, y = (torch.as_tensor(a, dtype=torch.long, device=self.device) for a in batch.arrays)
        _, loss = self(x, targets=y)
        assert loss is not None
        return loss, y.numel(), None

    def split_logprobs(
        self, ids: torch.Tensor, bos_id: int, *, chunk_size: int, windows_per_batch: int
    ) -> torch.Tensor:
        def score(hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return head_target_logprobs(self.head, hidden, targets)

        return sliding_window_logprobs(
            self.features, score, ids, bos_id, self.context, windows_per_batch
        )
