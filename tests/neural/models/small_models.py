"""Small models of every architecture, for the model tests."""

from __future__ import annotations

import torch

from seqlm.neural.models import build_model
from seqlm.params import NetParams

VOCAB_SIZE = 7
BOS_ID = 1

# an adaptive softmax over the 7 ids: a head over ids 0-2 and clusters 3-4 and 5-6
ADAPTIVE = {"output": "adaptive", "cutoffs": (3, 5), "div_value": 2.0}

# every architecture the package offers, by the name a test id shows
CONFIGS = {
    "rnn": ("rnn", {}),
    "gru": ("gru", {}),
    "lstm": ("lstm", {}),
    "lstm-2-layers": ("lstm", {"num_layers": 2}),
    "lstm-scratch": ("lstm", {"cell": "scratch"}),
    "gru-scratch-2-layers": ("gru", {"cell": "scratch", "num_layers": 2}),
    "seq2seq": ("seq2seq", {"window": 5}),
    "seq2seq-bidirectional-concat": (
        "seq2seq",
        {"window": 4, "bidirectional": True, "num_layers": 2},
    ),
    "seq2seq-bidirectional-sum": ("seq2seq", {"window": 6, "bidirectional": True, "bridge": "sum"}),
    "lstm-adaptive": ("lstm", {"num_layers": 2, **ADAPTIVE}),
    "gru-scratch-adaptive": ("gru", {"cell": "scratch", **ADAPTIVE}),
    "seq2seq-adaptive": ("seq2seq", {"window": 5, **ADAPTIVE}),
    # a context longer than the test streams: every target sees the whole stream before it
    "transformer": ("transformer", {"heads": 2, "num_layers": 2, "context": 32}),
    "transformer-rotary": ("transformer", {"heads": 2, "context": 32, "positions": "rotary"}),
    "transformer-adaptive": ("transformer", {"heads": 2, "context": 32, **ADAPTIVE}),
    # a short context: the split is scored by sliding windows
    "transformer-context-5": ("transformer", {"heads": 2, "context": 5, "positions": "rotary"}),
    "transformer-shift-context-5": ("transformer", {"heads": 2, "context": 5, "token_shift": True}),
}

# scored by windows that a token-by-token stream does not reproduce
SLIDING_WINDOWS = ("transformer-context-5", "transformer-shift-context-5")


def small_model(name: str, seed: int = 0, **overrides):
    """A small, freshly initialised model of configuration ``name`` (see CONFIGS)."""
    model_name, extra = CONFIGS[name]
    torch.manual_seed(seed)
    net = NetParams(embedding_size=6, hidden_size=8, **{**extra, **overrides})
    return build_model(model_name, net, VOCAB_SIZE, BOS_ID).eval()
