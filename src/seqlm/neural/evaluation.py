"""Scoring a neural model under the perplexity convention (:mod:`seqlm.perplexity`).

:func:`target_logprobs` gives ``log p(x_t | <bos>, x_1 .. x_{t-1})`` for every token of a split's
stream, one per target, float64 natural logs; :func:`score` turns them into the split's score. The
training loop validates with :func:`score` and the evaluate stage scores val and test with it, so
both report the same numbers. How a model reads a split is its own business
(:meth:`seqlm.neural.models.NeuralLM.split_logprobs`): a recurrent LM reads it as one stream from
``<bos>`` in long chunks that carry the state; seq2seq scores all of its windows at once.
"""

from __future__ import annotations

import numpy as np
import torch

from seqlm.data.corpus import SplitData
from seqlm.neural.models import NeuralLM
from seqlm.perplexity import SplitScore, score_model


@torch.no_grad()
def target_logprobs(
    model: NeuralLM,
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
        t = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=next(model.parameters()).device)
        if t.ndim != 1 or t.numel() == 0:
            raise ValueError(f"need a non-empty 1-D stream of ids, got shape {tuple(t.shape)}")
        lp = model.split_logprobs(
            t, bos_id, chunk_size=chunk_size, windows_per_batch=windows_per_batch
        )
    finally:
        model.train(was_training)
    return lp.cpu().numpy().astype(np.float64)


def score(model: NeuralLM, split: SplitData, bos_id: int) -> tuple[SplitScore, np.ndarray]:
    """A split's score under the convention, and the per-target log-probabilities behind it."""
    return score_model(lambda ids: target_logprobs(model, ids, bos_id), split)
