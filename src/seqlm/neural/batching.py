"""Training minibatches over a token-id stream: the textbook's two iterators and window pairs.

Both yield ``X`` and ``Y`` of shape ``(batch_size, num_steps)`` with ``Y`` the next token of each ``X``
position (``Y[b, t] = stream[start_b + t + 1]``).

Sequential partitioning (state can be carried across batches, truncated BPTT)::

    stream:  [o| a a a a a a a a a a a a | b b b b b b b b b b b b | ...]   (o = random offset)
              row 0 ──────────────────────  row 1 ─────────────────────
    batch i: columns [i*num_steps, (i+1)*num_steps) of every row, so row b of batch i+1
             continues row b of batch i exactly.

Random sampling: the stream (after a random offset) is cut into non-overlapping windows of
``num_steps``; the windows are shuffled and grouped ``batch_size`` at a time, so consecutive batches
are unrelated and no state should be carried.

Window pairs (seq2seq): the stream (after a random offset) is cut into windows of ``W`` tokens; each
batch pairs shuffled windows with the window before each (the first window has none)::

    stream:  [o| w0 w0 w0 | w1 w1 w1 | w2 w2 w2 | ...]
    batch:   src = window k − 1, tgt = window k, has_src = k > 0     for shuffled k
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np

from seqlm.params import TrainParams


def seq_data_iter_random(
    corpus: np.ndarray, batch_size: int, num_steps: int, rng: random.Random
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The textbook's random sampling, seeded through ``rng``."""
    corpus = np.asarray(corpus)[rng.randint(0, num_steps - 1) :]
    num_subseqs = (len(corpus) - 1) // num_steps
    initial_indices = list(range(0, num_subseqs * num_steps, num_steps))
    rng.shuffle(initial_indices)
    num_batches = num_subseqs // batch_size
    for i in range(0, batch_size * num_batches, batch_size):
        starts = np.asarray(initial_indices[i : i + batch_size])
        idx = starts[:, None] + np.arange(num_steps)[None, :]  # (B, T)
        yield corpus[idx], corpus[idx + 1]


def seq_data_iter_sequential(
    corpus: np.ndarray, batch_size: int, num_steps: int, rng: random.Random | None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The textbook's sequential partitioning; ``rng=None`` starts at offset 0 (deterministic)."""
    corpus = np.asarray(corpus)
    offset = rng.randint(0, num_steps) if rng is not None else 0
    num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
    xs = corpus[offset : offset + num_tokens].reshape(batch_size, -1)  # (B, L)
    ys = corpus[offset + 1 : offset + 1 + num_tokens].reshape(batch_size, -1)  # (B, L)
    num_batches = xs.shape[1] // num_steps
    for i in range(0, num_steps * num_batches, num_steps):
        yield xs[:, i : i + num_steps], ys[:, i : i + num_steps]


def lm_batches(
    stream: np.ndarray, params: TrainParams, rng: random.Random
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of ``(X, Y)`` minibatches, each ``(B, T)``, by ``params.sampling``'s iterator."""
    if params.sampling == "random":
        return seq_data_iter_random(stream, params.batch_size, params.num_steps, rng)
    return seq_data_iter_sequential(stream, params.batch_size, params.num_steps, rng)


def lm_batches_per_epoch(num_tokens: int, params: TrainParams) -> int:
    """How many minibatches :func:`lm_batches` gives over ``num_tokens`` at most."""
    if params.sampling == "random":
        return max(((num_tokens - 1) // params.num_steps) // params.batch_size, 0)
    return max(((num_tokens - 1) // params.batch_size) // params.num_steps, 0)


def window_pairs(
    ids: np.ndarray, window: int, batch_size: int, rng: random.Random
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One epoch of seq2seq batches ``(src (B, W), tgt (B, W), has_src (B,))``, random offset."""
    offset = rng.randrange(window)
    num_windows = (len(ids) - offset) // window
    windows = np.asarray(ids[offset : offset + num_windows * window]).reshape(num_windows, window)
    order = list(range(num_windows))
    rng.shuffle(order)
    for start in range(0, num_windows - batch_size + 1, batch_size):
        k = np.asarray(order[start : start + batch_size])
        src = windows[np.maximum(k - 1, 0)]
        has_src = k > 0  # window 0 has no previous window: the zero state
        yield src, windows[k], has_src


def window_pairs_per_epoch(num_tokens: int, window: int, batch_size: int) -> int:
    """How many batches :func:`window_pairs` gives over ``num_tokens`` at most."""
    return max((num_tokens - window + 1) // window // batch_size, 0)
