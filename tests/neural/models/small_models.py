"""Small models of every architecture, for the model tests."""

from __future__ import annotations

import torch

from seqlm.neural.models import NetParams, build_model

VOCAB_SIZE = 7
BOS_ID = 1

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
}


def small_model(name: str, seed: int = 0, **overrides):
    """A small, freshly initialised model of configuration ``name`` (see CONFIGS)."""
    model_name, extra = CONFIGS[name]
    torch.manual_seed(seed)
    net = NetParams(embedding_size=6, hidden_size=8, **{**extra, **overrides})
    return build_model(model_name, net, VOCAB_SIZE, BOS_ID).eval()
