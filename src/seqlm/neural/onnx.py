"""A trained model as an ONNX graph, checked against onnxruntime.

**ONNX** (:func:`export_onnx`, :func:`check_onnx`): the recurrent models (rnn, gru, lstm; fused or
scratch cells, a softmax or adaptive output layer) and the transformer as a graph::

    ids       int64   (1, T)      T dynamic; the first id is <bos>
    logprobs  float32 (1, T, V)   logprobs[0, t, v] = log p(v | ids[0, : t + 1]), natural log

read from a fresh start (no state in or out), in eval mode (no dropout), over the full vocabulary
(an adaptive softmax's clusters concatenated). The transformer reads at most ``T = net.context``
ids (one window, as :meth:`~seqlm.neural.models.transformer.TransformerLM.features`): longer inputs
are refused by :func:`check_onnx`, and fail in the runtime with learned positions. A model with
scratch cells is exported through its fused twin (same parameters, same outputs: the scratch cells
unroll a Python loop, which a graph of dynamic length cannot hold); :func:`check_onnx` compares
the graph with the scratch model itself. The seq2seq model is refused.

The exporter is torch's TorchScript-based one (``torch.onnx.export(..., dynamo=False)``): it maps
``nn.RNN/GRU/LSTM`` to ONNX's recurrent operators with a dynamic length, where the dynamo exporter
fixes the length of the recurrent models' graphs to the example's.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from seqlm.core.atomic import atomic_path
from seqlm.core.errors import DataError, ParamError
from seqlm.neural.models import NeuralLM, RecurrentLM, ScratchRecurrent, TransformerLM, build_model
from seqlm.neural.models.heads import Head

ONNX_MODELS = ("rnn", "gru", "lstm", "transformer")
DEFAULT_OPSET = 17
PARITY_TOLERANCE = 1e-4
"""The largest difference between onnxruntime's and torch's log-probabilities ``seqlm export``
accepts."""
PARITY_LENGTH = 32
PARITY_SEED = 0


# --- ONNX ----------------------------------------------------------------------------------------


def _kind(model: NeuralLM) -> str:
    """``rnn``, ``gru``, ``lstm`` or ``transformer``; ParamError for a model ONNX export refuses."""
    kind = str(getattr(model, "mode", type(model).__name__))
    if not isinstance(model, RecurrentLM | TransformerLM) or kind not in ONNX_MODELS:
        raise ParamError(
            f"seqlm export --onnx supports rnn, gru, lstm and transformer, not {kind} (export "
            f"it as safetensors instead: seqlm export --safetensors DIR)"
        )
    return kind


def head_logprobs(head: Head, hidden: torch.Tensor) -> torch.Tensor:
    """``(…, H) → (…, V)`` natural-log probabilities over the whole vocabulary, either kind of
    output layer, in operations ONNX maps one to one (the adaptive softmax's clusters joined by a
    concatenation, not written into a preallocated tensor as torch's ``log_prob`` does)."""
    if isinstance(head, nn.Linear):
        return F.log_softmax(head(hidden), dim=-1)
    head_logp = F.log_softmax(head.head(hidden), dim=-1)  # (…, shortlist + clusters)
    k = head.shortlist_size
    parts = [head_logp[..., :k]]
    for i, tail in enumerate(head.tail):
        cluster = head_logp[..., k + i : k + i + 1]  # (…, 1): log p(cluster i)
        parts.append(F.log_softmax(tail(hidden), dim=-1) + cluster)  # (…, c_{i+1} − c_i)
    return torch.cat(parts, dim=-1)  # (…, V)


def full_logprobs(model: NeuralLM, ids: torch.Tensor) -> torch.Tensor:
    """``ids (B, T)`` read from a fresh start → ``(B, T, V)`` log-probabilities of the next token
    (the graph :func:`export_onnx` writes; the model's mode, train or eval, is the caller's)."""
    _kind(model)
    if isinstance(model, RecurrentLM):
        hidden, _ = model.features(ids, None)  # (B, T, H)
    else:
        hidden = model.features(ids)  # (B, T, H)
    return head_logprobs(model.head, hidden)


class _LogProbGraph(nn.Module):
    """What is exported: ``ids (1, T) → logprobs (1, T, V)``."""

    def __init__(self, model: NeuralLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return full_logprobs(self.model, ids)


def _exportable(model: NeuralLM) -> NeuralLM:
    """``model``, or for scratch cells its fused twin: the same parameters in ``nn.LSTM`` (…)."""
    if not (isinstance(model, RecurrentLM) and isinstance(model.rnn, ScratchRecurrent)):
        return model
    net = model.net.model_copy(update={"cell": "fused"})
    with torch.random.fork_rng(devices=[]):  # its initial weights, overwritten, draw nothing
        twin = build_model(model.mode, net, model.vocab_size, 0)  # bos_id: seq2seq's only
    twin.load_state_dict(model.state_dict())
    return twin.to(model.device).eval()


def export_onnx(model: NeuralLM, path: str | os.PathLike[str], *, opset: int | None = None) -> Path:
    """Write ``model`` (rnn, gru, lstm or transformer) as an ONNX graph ``ids (1, T) int64 →
    logprobs (1, T, V) float32`` (module docstring) at ``path``, atomically; returns the path.

    ``opset`` defaults to :data:`DEFAULT_OPSET`. Raises ParamError for another model (seq2seq),
    DataError when torch's exporter fails. Check the file with :func:`check_onnx`.
    """
    kind = _kind(model)
    was_training = model.training
    model.eval()
    try:
        graph = _LogProbGraph(_exportable(model)).eval()
        length = min(4, model.net.context) if kind == "transformer" else 4
        example = torch.zeros(1, length, dtype=torch.long, device=model.device)
        buffer = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
            try:
                torch.onnx.export(
                    graph,
                    (example,),
                    buffer,
                    dynamo=False,
                    input_names=["ids"],
                    output_names=["logprobs"],
                    dynamic_axes={"ids": {1: "T"}, "logprobs": {1: "T"}},
                    opset_version=DEFAULT_OPSET if opset is None else opset,
                )
            except Exception as e:  # the exporter's own errors: say what failed
                raise DataError(f"torch.onnx could not export the {kind} model: {e}") from e
    finally:
        model.train(was_training)
    out = Path(path)
    with atomic_path(out) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return out


def parity_ids(
    vocab_size: int, bos_id: int, length: int = PARITY_LENGTH, seed: int = PARITY_SEED
) -> torch.Tensor:
    """A fixed input for :func:`check_onnx`: ``<bos>`` then ``length − 1`` ids drawn uniformly
    with ``seed``, ``(1, length)`` int64."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab_size, size=length)
    ids[0] = bos_id
    return torch.as_tensor(ids, dtype=torch.long).unsqueeze(0)


def _as_ids(model: NeuralLM, ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """``ids`` as ``(1, T)`` int64 on the CPU, checked against the model."""
    x = torch.as_tensor(ids, dtype=torch.long).cpu()
    x = x.unsqueeze(0) if x.dim() == 1 else x
    if x.dim() != 2 or x.shape[0] != 1 or x.shape[1] == 0:
        raise ParamError(
            f"check_onnx needs ids of shape (T,) or (1, T), T >= 1; got {tuple(x.shape)}"
        )
    if int(x.min()) < 0 or int(x.max()) >= model.vocab_size:
        raise ParamError(f"check_onnx's ids must be in 0 .. {model.vocab_size - 1}")
    if isinstance(model, TransformerLM) and x.shape[1] > model.context:
        raise ParamError(
            f"{x.shape[1]} ids exceed the transformer's context of {model.context}: its ONNX "
            "graph reads at most net.context ids"
        )
    return x


def check_onnx(
    model: NeuralLM, path: str | os.PathLike[str], ids: torch.Tensor | Sequence[int]
) -> float:
    """The largest absolute difference between the log-probabilities onnxruntime computes with
    the graph at ``path`` and those of ``model`` (eval mode, float32) on ``ids`` ((T,) or (1, T);
    at most ``net.context`` ids for the transformer)."""
    import onnxruntime as ort

    _kind(model)
    x = _as_ids(model, ids)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            expected = full_logprobs(model, x.to(model.device)).float().cpu().numpy()
    finally:
        model.train(was_training)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        (got,) = session.run(["logprobs"], {"ids": x.numpy()})
    except Exception as e:  # onnxruntime's own errors: a foreign or broken file
        raise DataError(f"onnxruntime cannot run {str(path)!r} ({e})") from e
    if got.shape != expected.shape:
        raise DataError(
            f"{str(path)!r} gives log-probabilities of shape {got.shape}, torch {expected.shape}"
        )
    return float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64))))
