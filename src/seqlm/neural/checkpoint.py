"""Checkpoints: a model's ``state_dict`` plus what is needed to rebuild and trust it.

A checkpoint is a plain dict saved with ``torch.save`` and read back with ``weights_only=True`` (no
pickled code)::

    {"format": 1, "model": "lstm", "net": {...NetParams...}, "vocab_size": 29,
     "vocab_sha256": "...", "bos_id": 1, "state_dict": {...},
     "epoch": 7, "best_val_perplexity": 3.91,
     "vocab_tsv": "token\tcount\n...", "text": {"clean": "textbook", "token": "char", ...}}

Loading rebuilds the model from ``model`` + ``net`` and refuses a checkpoint trained with another
vocabulary, or with another configuration than the one expected (``params.yaml``'s).

The last two keys make a checkpoint usable on its own (:func:`load_standalone`, behind
``seqlm.load``): the vocabulary in its saved form and how raw text became tokens (the ``clean`` and
``tokenize`` params that matter for new text). The train stage adds them when training ends
(:func:`add_text_reading`); a checkpoint without them still loads with a vocabulary in hand.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqlm.core.atomic import atomic_path
from seqlm.core.diff import differences
from seqlm.core.errors import DataError, ParamError
from seqlm.data.vocab import Vocab, parse_vocab
from seqlm.neural.models import NeuralLM, build_model, check_model
from seqlm.params import AUTO, NetParams, build
from seqlm.sampling import kept_reading

FORMAT = 1
TEXT_KEYS = ("clean", "token", "line_end")  # what turns raw text into tokens, as the stages did


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about itself, besides the weights."""

    model: str
    net: NetParams
    vocab_size: int
    vocab_sha256: str
    bos_id: int
    epoch: int
    best_val_perplexity: float


def save_checkpoint(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    *,
    model_name: str,
    net: NetParams,
    vocab: Vocab,
    epoch: int,
    best_val_perplexity: float,
) -> None:
    """Write the checkpoint atomically (tensors copied to the CPU)."""
    payload = {
        "format": FORMAT,
        "model": model_name,
        "net": net.to_dict(),
        "vocab_size": len(vocab),
        "vocab_sha256": vocab.checksum(),
        "bos_id": vocab.id_of("<bos>"),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "epoch": int(epoch),
        "best_val_perplexity": float(best_val_perplexity),
    }
    # Serialised in memory first: torch names the archive inside the file after the file it writes,
    # and the temporary file's name is random, so saving to it directly would make the bytes differ
    # from run to run. From a buffer the archive is always named "archive".
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"checkpoint {str(path)!r} does not exist; run the train stage first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: say which
        raise DataError(f"{str(path)!r} is not a readable seqlm checkpoint ({e})") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(f"{str(path)!r} is not a seqlm checkpoint of format {FORMAT}")
    return payload


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The payload saved at ``path`` as it is (checked to be a seqlm checkpoint of :data:`FORMAT`,
    nothing rebuilt): what :mod:`seqlm.neural.export` copies into its portable files."""
    return _read(Path(path))


def load_checkpoint(
    path: str | os.PathLike[str],
    vocab: Vocab,
    *,
    model_name: str | None = None,
    net: NetParams | None = None,
    device: str | torch.device = "cpu",
) -> tuple[NeuralLM, CheckpointInfo]:
    """Rebuild the model saved at ``path``, in eval mode on ``device``.

    Refused (DataError) when it was trained with another vocabulary than ``vocab``, or, when
    ``model_name`` / ``net`` are given, with another model or ``net`` section than those.
    """
    p = Path(path)
    return _rebuild(p, _read(p), vocab, model_name, net, device)


def _rebuild(
    p: Path,
    payload: dict[str, Any],
    vocab: Vocab,
    model_name: str | None,
    net: NetParams | None,
    device: str | torch.device,
) -> tuple[NeuralLM, CheckpointInfo]:
    if payload["vocab_sha256"] != vocab.checksum() or payload["vocab_size"] != len(vocab):
        raise DataError(
            f"checkpoint {str(p)!r} was trained with another vocabulary ({payload['vocab_size']} "
            f"entries, sha256 {payload['vocab_sha256'][:12]}…) than the one given ({len(vocab)} "
            f"entries, sha256 {vocab.checksum()[:12]}…); retrain it (dvc repro train)"
        )
    saved_model = payload["model"]
    try:
        check_model(saved_model)
        saved_net = build(NetParams, "net", payload["net"])
    except ParamError as e:
        raise DataError(
            f"checkpoint {str(p)!r} holds a configuration seqlm cannot build: {e}"
        ) from e
    if model_name is not None and model_name != saved_model:
        raise DataError(
            f"checkpoint {str(p)!r} holds a {saved_model!r} model but params ask for "
            f"{model_name!r}; retrain it (dvc repro train)"
        )
    if net is not None and not net.sized():  # params leave the sizes to the train stage
        net = net.replace(
            **{
                key: getattr(saved_net, key)
                for key in ("embedding_size", "hidden_size")
                if getattr(net, key) == AUTO
            }
        )
    if net is not None and saved_net != net:
        diff = "; ".join(differences(saved_net.to_dict(), net.to_dict(), "checkpoint", "params"))
        raise DataError(
            f"checkpoint {str(p)!r} was trained with another net configuration ({diff}); "
            f"retrain it (dvc repro train)"
        )
    model = build_model(saved_model, saved_net, payload["vocab_size"], payload["bos_id"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        raise DataError(f"checkpoint {str(p)!r} does not fit its own configuration: {e}") from e
    model.to(device).eval()
    info = CheckpointInfo(
        model=saved_model,
        net=saved_net,
        vocab_size=int(payload["vocab_size"]),
        vocab_sha256=str(payload["vocab_sha256"]),
        bos_id=int(payload["bos_id"]),
        epoch=int(payload["epoch"]),
        best_val_perplexity=float(payload["best_val_perplexity"]),
    )
    return model, info


def rebuild(
    path: str | os.PathLike[str],
    payload: dict[str, Any],
    vocab: Vocab,
    device: str | torch.device = "cpu",
) -> tuple[NeuralLM, CheckpointInfo]:
    """The model a checkpoint-shaped ``payload`` describes (the keys :func:`save_checkpoint`
    writes), checked as :func:`load_checkpoint` checks a file: trained with ``vocab``, a
    configuration seqlm builds, a state dict that fits it (DataError otherwise, naming ``path``,
    the file the payload was read from)."""
    return _rebuild(Path(path), payload, vocab, None, None, device)


def add_text_reading(path: str | os.PathLike[str], vocab: Vocab, text: dict[str, str]) -> None:
    """Add to the checkpoint at ``path`` its vocabulary and how raw text becomes its tokens
    (``text``: :data:`TEXT_KEYS`), so that the file alone can score and generate (rewritten
    atomically, bytes reproducible)."""
    missing = [k for k in TEXT_KEYS if not isinstance(text.get(k), str)]
    if missing:
        raise ParamError(f"the text reading needs {', '.join(TEXT_KEYS)}; missing {missing}")
    p = Path(path)
    payload = _read(p)
    if payload["vocab_sha256"] != vocab.checksum():
        raise DataError(f"checkpoint {str(p)!r} was trained with another vocabulary")
    payload["vocab_tsv"] = vocab.to_tsv()
    payload["text"] = kept_reading(text, TEXT_KEYS)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(p) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_standalone(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[NeuralLM, CheckpointInfo, Vocab, dict[str, str]]:
    """A checkpoint that carries its vocabulary and text reading: the model (eval mode), what the
    checkpoint says of itself, the vocabulary and the text reading (:data:`TEXT_KEYS`)."""
    p = Path(path)
    payload = _read(p)
    if not isinstance(payload.get("vocab_tsv"), str) or not isinstance(payload.get("text"), dict):
        raise DataError(
            f"checkpoint {str(p)!r} does not carry its vocabulary and text reading (a checkpoint "
            "the train stage wrote before it added them, or one saved while training); rerun the "
            "train stage, or load it with its vocabulary (seqlm.neural.checkpoint.load_checkpoint)"
        )
    vocab = parse_vocab(payload["vocab_tsv"], f"the vocabulary in {str(p)!r}")
    model, info = _rebuild(p, payload, vocab, None, None, device)
    text = kept_reading({k: str(v) for k, v in payload["text"].items()}, TEXT_KEYS)
    return model, info, vocab, text
