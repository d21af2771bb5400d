"""Fixtures for the model tests."""

from __future__ import annotations

import numpy as np
import pytest
from small_models import VOCAB_SIZE


@pytest.fixture
def stream_ids() -> np.ndarray:
    """23 token ids (never <bos>): long enough for several seq2seq windows and a short last one."""
    rng = np.random.default_rng(0)
    ids = rng.integers(2, VOCAB_SIZE, size=23)
    ids[[3, 11]] = 0  # a couple of <unk>
    return ids.astype(np.int32)
