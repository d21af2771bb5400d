"""Scoring a neural model under the perplexity convention (:mod:`seqlm.perplexity`).

:func:`target_logprobs` gives ``log p(x_t | <bos>, x_1 .. x_{t-1})`` for every token of a split's
stream, one per target, float64 natural logs — the same numbers for train-time validation and for
the evaluate stage.

* Recurrent LMs read the whole split as one stream from ``<bos>``, in long chunks that carry the
  state (exact: every target sees all of the split before it; the chunking only bounds memory)::

      inputs:  <bos> x1 x2 ... x2047 | x2048 ... | ...      state carried across the bar
      targets:  x1   x2 x3 ... x2048 | x2049 ... | ...

* Seq2seq scores all of its windows at once (they are independent given the previous window), in
  batches of windows; the last, short window is padded and the padding's scores dropped.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from seqlm.data.corpus import SplitData
from seqlm.neural.models import RecurrentLM, Seq2SeqLM
from seqlm.perplexity import SplitScore, score_split


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _gather_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[target]`` in float64: ``(B, T, V), (B, T) -> (B, T)``."""
    logp = F.log_softmax(logits.double(), dim=-1)  # (B, T, V)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)


def _recurrent_logprobs(
    model: RecurrentLM, ids: torch.Tensor, bos_id: int, chunk_size: int
) -> np.ndarray:
    inputs = torch.cat([ids.new_tensor([bos_id]), ids[:-1]])  # (N,) <bos> x1 .. x_{N-1}
    out = []
    state = None
    for start in range(0, ids.numel(), chunk_size):
        x = inputs[start : start + chunk_size].unsqueeze(0)  # (1, n)
        y = ids[start : start + chunk_size].unsqueeze(0)  # (1, n)
        logits, state = model.stream(x, state)  # (1, n, V)
        out.append(_gather_logprobs(logits, y)[0])
    return torch.cat(out).cpu().numpy()


def _seq2seq_logprobs(model: Seq2SeqLM, ids: torch.Tensor, windows_per_batch: int) -> np.ndarray:
    w = model.window
    n = ids.numel()
    num_windows = -(-n // w)
    padded = torch.zeros(num_windows * w, dtype=ids.dtype, device=ids.device)
    padded[:n] = ids
    tgt = padded.view(num_windows, w)  # (K, W): window k
    src = torch.cat([torch.zeros_like(tgt[:1]), tgt[:-1]])  # (K, W): window k − 1 (none for k = 0)
    has_src = torch.arange(num_windows, device=ids.device) > 0  # (K,)
    out = []
    for start in range(0, num_windows, windows_per_batch):
        sl = slice(start, start + windows_per_batch)
        logits, _ = model(src[sl], tgt[sl], has_src[sl])  # (b, W, V)
        out.append(_gather_logprobs(logits, tgt[sl]).reshape(-1))
    return torch.cat(out)[:n].cpu().numpy()


@torch.no_grad()
def target_logprobs(
    model: RecurrentLM | Seq2SeqLM,
    ids: np.ndarray,
    bos_id: int,
    *,
    chunk_size: int = 4096,
    windows_per_batch: int = 256,
) -> np.ndarray:
    """Natural-log probability of every target of ``ids`` from a fresh ``<bos>`` start (float64).

    The model is put in eval mode (no dropout) for the call and restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        t = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=_device_of(model))
        if t.ndim != 1 or t.numel() == 0:
            raise ValueError(f"need a non-empty 1-D stream of ids, got shape {tuple(t.shape)}")
        if isinstance(model, Seq2SeqLM):
            lp = _seq2seq_logprobs(model, t, windows_per_batch)
        else:
            lp = _recurrent_logprobs(model, t, bos_id, chunk_size)
    finally:
        model.train(was_training)
    return lp.astype(np.float64)


def score(
    model: RecurrentLM | Seq2SeqLM, split: SplitData, bos_id: int
) -> tuple[SplitScore, np.ndarray]:
    """A split's score under the convention, and the per-target log-probabilities behind it."""
    lp = target_logprobs(model, split.ids, bos_id)
    return score_split(lp, split.characters, split.oov), lp
