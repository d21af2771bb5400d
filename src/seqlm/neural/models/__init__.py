"""Neural language models: recurrent LMs (RNN, GRU, LSTM), the seq2seq encoder–decoder and a
decoder-only transformer.

Build one from the top-level ``model`` key and the ``net`` section with :func:`build_model`. Every
model is a :class:`NeuralLM`: it cuts its training batches, gives the loss of a batch, and scores a
split under the perplexity convention (:func:`seqlm.neural.evaluation.target_logprobs`); it also
reads a token stream that starts with ``<bos>`` through ``model.stream(inputs, state)`` (generation).
"""

from __future__ import annotations

import torch.nn as nn

from seqlm.neural.models.base import Batch, NeuralLM
from seqlm.neural.models.cells import ScratchRecurrent, make_recurrent
from seqlm.neural.models.recurrent import RecurrentLM
from seqlm.neural.models.seq2seq import Seq2SeqLM
from seqlm.neural.models.transformer import TransformerLM
from seqlm.params import (
    CELLS,
    MODELS,
    RECURRENT_MODELS,
    NetParams,
    check_model,
    check_net_for_model,
    load_model_name,
)

__all__ = [
    "CELLS",
    "MODELS",
    "RECURRENT_MODELS",
    "Batch",
    "NeuralLM",
    "RecurrentLM",
    "ScratchRecurrent",
    "Seq2SeqLM",
    "TransformerLM",
    "build_model",
    "check_model",
    "check_net_for_model",
    "count_parameters",
    "load_model_name",
    "make_recurrent",
]


def build_model(model: str, net: NetParams, vocab_size: int, bos_id: int) -> NeuralLM:
    """A freshly initialised model; raises ParamError for an unknown model or a bad combination."""
    check_net_for_model(model, net)
    if model == "seq2seq":
        return Seq2SeqLM(vocab_size, net, bos_id)
    if model == "transformer":
        return TransformerLM(vocab_size, net)
    return RecurrentLM(model, vocab_size, net)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, a tied matrix counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
