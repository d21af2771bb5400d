"""Sampling text from an n-gram model, for reading beside the neural models' samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seqlm.ngram.model import NgramModel
from seqlm.sampling import next_id


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
        out[t] = next_id(
            model.distribution(context[-keep:]),
            rng=rng,
            temperature=temperature,
            top_k=top_k,
            banned_ids=banned_ids,
        )
        context.append(int(out[t]))
    return out
