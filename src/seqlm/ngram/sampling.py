"""Sampling text from an n-gram model, for reading beside the neural models' samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seqlm.core.errors import ParamError
from seqlm.ngram.model import NgramModel


def sampling_distribution(
    probs: np.ndarray, temperature: float = 1.0, top_k: int = 0, banned_ids: Sequence[int] = ()
) -> np.ndarray:
    """Reshape a next-token distribution for sampling: ban ids, keep the top k, apply temperature.

    ``top_k = 0`` keeps every id; the result sums to 1."""
    if not temperature > 0:
        raise ParamError(f"temperature = {temperature} must be > 0")
    if top_k < 0:
        raise ParamError(f"top_k = {top_k} must be >= 0 (0 = off)")
    p = np.asarray(probs, dtype=np.float64).copy()
    p[list(banned_ids)] = 0.0
    if top_k and top_k < np.count_nonzero(p):
        p[np.argsort(p, kind="stable")[:-top_k]] = 0.0
    with np.errstate(divide="ignore"):
        logits = np.log(p) / temperature
    logits -= logits.max()
    q = np.exp(logits)
    return q / q.sum()


def generate(
    model: NgramModel,
    prefix_ids: Sequence[int],
    length: int,
    rng: np.random.Generator,
    temperature: float = 1.0,
    top_k: int = 0,
    banned_ids: Sequence[int] = (),
) -> np.ndarray:
    """Sample ``length`` token ids continuing ``<bos> + prefix_ids``; returns only the new ids."""
    context = [model.bos_id, *(int(i) for i in prefix_ids)]
    out = np.empty(length, dtype=np.int64)
    keep = max(model.order - 1, 1)
    for t in range(length):  # sequential by nature: each token is the next one's context
        q = sampling_distribution(
            model.distribution(context[-keep:]), temperature, top_k, banned_ids
        )
        out[t] = rng.choice(q.size, p=q)
        context.append(int(out[t]))
    return out
