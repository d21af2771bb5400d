"""The notes' encoder–decoder as a language model over consecutive windows.

The stream is cut into windows of ``W = net.window`` tokens. The encoder (an LSTM, optionally
bidirectional, stacked) reads window ``k − 1``; its final state becomes the decoder's initial
state; the decoder (an LSTM) predicts window ``k`` with teacher forcing, from a ``<bos>`` input::

    stream:   [ w0 w0 w0 w0 | w1 w1 w1 w1 | w2 w2 w2 ... ]    (W = 4, the last may be short)
    window 1: encoder reads  w0 w0 w0 w0  → (h, c) ─┐
              decoder reads  <bos> w1 w1 w1    ←───┘   predicts  w1 w1 w1 w1
    window 0: no previous window: the decoder starts from the zero state

Every token is a target exactly once (in its own window), predicted from the tokens before it only:
the previous window through the encoder and its own window's earlier tokens through the decoder.
A bidirectional encoder's two final states (per layer) are joined by the ``bridge``: concatenated
and mapped back to ``H`` by a linear layer (``concat``), or added (``sum``).

It trains on (previous window → window) pairs, shuffled, every epoch from a random offset
(:func:`seqlm.neural.batching.window_pairs`); a split is scored all windows at once (they are
independent given the previous window), in batches of windows, the last, short window padded and
the padding's scores dropped.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from seqlm.neural.batching import window_pairs, window_pairs_per_epoch
from seqlm.neural.models.base import Batch, NeuralLM
from seqlm.neural.models.cells import make_recurrent
from seqlm.neural.models.heads import head_output, head_scores, head_target_logprobs, make_head
from seqlm.neural.models.recurrent import init_embedding_and_head, init_uniform
from seqlm.neural.models.regularization import embedding_dropout, locked_dropout, weight_dropped
from seqlm.params import NetParams, TrainParams, check_net_for_model

LstmState = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Seq2SeqStreamState:
    """Where a stream reader is: the next target's position, recent tokens, the decoder state."""

    position: int = 0  # index in the stream of the next target
    history: list[int] = field(default_factory=list)  # the last (at most W) tokens read
    decoder_state: LstmState | None = None


class Seq2SeqLM(NeuralLM):
    """Encoder–decoder LM (see the module docstring)."""

    def __init__(self, vocab_size: int, net: NetParams, bos_id: int) -> None:
        super().__init__()
        check_net_for_model("seq2seq", net)
        self.mode = "seq2seq"
        self.vocab_size = vocab_size
        self.net = net
        self.bos_id = bos_id
        self.window = net.window
        self.embedding = nn.Embedding(vocab_size, net.embedding_size)  # shared by both sides
        self.encoder = make_recurrent(
            "lstm",
            net.cell,
            net.embedding_size,
            net.hidden_size,
            net.num_layers,
            net.dropout,
            bidirectional=net.bidirectional,
        )
        self.decoder = make_recurrent(
            "lstm", net.cell, net.embedding_size, net.hidden_size, net.num_layers, net.dropout
        )
        if net.bidirectional and net.bridge == "concat":
            self.bridge_h = nn.Linear(2 * net.hidden_size, net.hidden_size)
            self.bridge_c = nn.Linear(2 * net.hidden_size, net.hidden_size)
        self.head = make_head(net, vocab_size)
        init_embedding_and_head(self.embedding, self.head, net.tie_weights)
        init_uniform(self, net.init_range)

    # --- building blocks ------------------------------------------------------------------------

    def _embed(self, idx: torch.Tensor) -> torch.Tensor:
        x = embedding_dropout(self.embedding, idx, self.net.embedding_dropout, self.training)
        return locked_dropout(x, self.net.input_dropout, self.training, self.net.locked)  # (B,T,E)

    def encode(self, src: torch.Tensor, has_src: torch.Tensor | None = None) -> LstmState:
        """The decoder's initial state from the previous windows ``src (B, W)``.

        Rows where ``has_src`` is false (the stream's first window) get the zero state.
        """
        net = self.net
        _, (h, c) = weight_dropped(self.encoder, net.weight_drop, self.training, self._embed(src))
        if net.bidirectional:  # (L·2, B, H) → (L, B, H): join the two directions of each layer
            h = h.view(net.num_layers, 2, *h.shape[1:])  # (L, 2, B, H)
            c = c.view(net.num_layers, 2, *c.shape[1:])
            if net.bridge == "concat":
                h = self.bridge_h(torch.cat([h[:, 0], h[:, 1]], dim=-1))  # (L, B, H)
                c = self.bridge_c(torch.cat([c[:, 0], c[:, 1]], dim=-1))
            else:
                h, c = h.sum(dim=1), c.sum(dim=1)  # (L, B, H)
        if has_src is not None:
            keep = has_src.to(h.dtype).view(1, -1, 1)  # (1, B, 1)
            h, c = h * keep, c * keep
        return h.contiguous(), c.contiguous()

    def decode_hidden(
        self, tgt_in: torch.Tensor, state: LstmState | None
    ) -> tuple[torch.Tensor, LstmState]:
        """The output layer's input ``(B, T, H)`` for decoder inputs ``tgt_in (B, T)``."""
        net = self.net
        x = self._embed(tgt_in)  # (B, T, E)
        out, state = weight_dropped(self.decoder, net.weight_drop, self.training, x, state)
        return locked_dropout(out, net.output_dropout, self.training, net.locked), state

    def decode(
        self, tgt_in: torch.Tensor, state: LstmState | None
    ) -> tuple[torch.Tensor, LstmState]:
        """Decoder logits ``(B, T, V)`` (adaptive softmax: log-probabilities) for ``tgt_in``."""
        out, state = self.decode_hidden(tgt_in, state)  # (B, T, H)
        return head_scores(self.head, out), state  # (B, T, V)

    def forward(
        self,
        src: torch.Tensor,
        tgt: torch.Tensor,
        has_src: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Teacher forcing: ``src (B, W)`` previous windows, ``tgt (B, T)`` the windows to predict.

        The decoder reads ``<bos> tgt[:, :-1]``. Returns ``(logits (B, T, V), loss or None)``, the
        loss against ``targets`` (normally ``tgt``; ``-100`` marks padding to ignore, softmax
        only). With the adaptive softmax and ``targets`` the logits are not computed (None).
        """
        out, _ = self.decode_hidden(self._teacher_inputs(tgt), self.encode(src, has_src))
        return head_output(self.head, out, targets)

    def _teacher_inputs(self, tgt: torch.Tensor) -> torch.Tensor:
        """The decoder's inputs for targets ``tgt (B, T)``: ``<bos> tgt[:, :-1]``."""
        bos = tgt.new_full((tgt.shape[0], 1), self.bos_id)
        return torch.cat([bos, tgt[:, :-1]], dim=1)  # (B, T)

    # --- reading a stream token by token (generation) -------------------------------------------

    def stream(
        self, inputs: torch.Tensor, state: Seq2SeqStreamState | None
    ) -> tuple[torch.Tensor, Seq2SeqStreamState]:
        """Read stream inputs ``(1, n)`` — ``<bos>`` then the tokens — giving logits ``(1, n, V)``.

        ``logits[0, i]`` is the distribution of the target after input ``i``. Window boundaries are
        handled here: at each one the previous window is encoded and the decoder restarts from
        ``<bos>``, exactly as in :meth:`forward`.
        """
        if inputs.shape[0] != 1:
            raise ValueError("Seq2SeqLM.stream reads one stream at a time (batch of 1)")
        st = state if state is not None else Seq2SeqStreamState()
        window = self.window
        tokens = [int(t) for t in inputs[0].tolist()]
        outputs = []
        i = 0
        while i < len(tokens):
            # a segment of inputs whose targets all lie in one window: one decoder call
            n = min(len(tokens) - i, window - st.position % window)
            segment = []
            for q in range(n):
                position = st.position + q
                if position > 0:  # input `position` is the token at `position - 1`
                    st.history.append(tokens[i + q])
                if position % window == 0:  # q == 0: a window starts; restart from <bos>
                    previous = st.history[-window:]
                    src = torch.tensor([previous], device=inputs.device)
                    st.decoder_state = self.encode(src) if position > 0 else None
                    segment.append(self.bos_id)
                else:
                    segment.append(tokens[i + q])
            del st.history[:-window]
            seg = torch.tensor([segment], device=inputs.device)  # (1, n)
            logits, st.decoder_state = self.decode(seg, st.decoder_state)  # (1, n, V)
            outputs.append(logits)
            st.position += n
            i += n
        return torch.cat(outputs, dim=1), st

    # --- the NeuralLM interface -----------------------------------------------------------------

    def stream_reader(self) -> None:
        """None: each window is read from a fresh encoding of the one before it, so there is no
        stream state to carry (or adapt) from one segment to the next."""
        return None

    def batch_unit(self, params: TrainParams) -> str:
        return f"windows of {self.window}"

    def batches_per_epoch(self, num_ids: int, params: TrainParams) -> int:
        return window_pairs_per_epoch(num_ids, self.window, params.batch_size)

    def training_batches(
        self, ids: np.ndarray, bos_id: int, params: TrainParams, rng: random.Random
    ) -> Iterator[Batch]:
        stream = np.asarray(ids, dtype=np.int64)
        for arrays in window_pairs(stream, self.window, params.batch_size, rng):
            yield Batch(arrays, continues=False)

    def batch_loss(self, batch: Batch, state: None) -> tuple[torch.Tensor, int, None]:
        src, tgt, has_src = (torch.as_tensor(a, device=self.device) for a in batch.arrays)
        _, loss = self(src, tgt, has_src, targets=tgt)
        assert loss is not None
        return loss, tgt.numel(), None

    def split_logprobs(
        self, ids: torch.Tensor, bos_id: int, *, chunk_size: int, windows_per_batch: int
    ) -> torch.Tensor:
        w = self.window
        n = ids.numel()
        num_windows = -(-n // w)
        padded = torch.zeros(num_windows * w, dtype=ids.dtype, device=ids.device)
        padded[:n] = ids
        tgt = padded.view(num_windows, w)  # (K, W): window k
        src = torch.cat([torch.zeros_like(tgt[:1]), tgt[:-1]])  # (K, W): window k − 1 (none: k = 0)
        has_src = torch.arange(num_windows, device=ids.device) > 0  # (K,)
        out = []
        for start in range(0, num_windows, windows_per_batch):
            sl = slice(start, start + windows_per_batch)
            state = self.encode(src[sl], has_src[sl])
            hidden, _ = self.decode_hidden(self._teacher_inputs(tgt[sl]), state)  # (b, W, H)
            out.append(head_target_logprobs(self.head, hidden, tgt[sl]).reshape(-1))
        return torch.cat(out)[:n]  # (N,)
