"""A trained model in portable forms: safetensors + a JSON config, and ONNX.

**Safetensors + config.json** (:func:`write_portable`, :func:`load_portable`): the checkpoint
``model.pt`` (:mod:`seqlm.neural.checkpoint`) as two files that load without unpickling anything,
written by the train stage beside the checkpoint (and by ``seqlm export --safetensors DIR``):

* ``model.safetensors``: the ``state_dict``, one tensor per key, with the metadata
  ``{"format": "pt", "seqlm": "1"}``. A tied matrix (``net.tie_weights``: the output layer shares
  the embedding) is one tensor under two keys in the checkpoint; safetensors refuses tensors that
  share memory, so the second key gets a copy: the file holds the matrix twice, and loading puts
  both copies (equal) into the one shared parameter, so the model is tied again;
* ``config.json``: everything else the finished checkpoint holds, as plain JSON::

      {"format": 1, "model": "lstm", "net": {...NetParams...}, "vocab_size": 29,
       "vocab_sha256": "...", "bos_id": 1, "epoch": 7, "best_val_perplexity": 3.91,
       "text": {"clean": "textbook", "token": "char", "line_end": "space"},
       "vocab": {"tokens": ["<unk>", "<bos>", " ", "e", ...], "counts": [0, 0, 4, ...]}}

  ``vocab_sha256`` is the checksum of that vocabulary (:meth:`~seqlm.data.vocab.Vocab.checksum`),
  checked on loading as the checkpoint's is.

Both files are written atomically and their bytes depend on the checkpoint only: the config's keys
are sorted, and safetensors' header (whose tensors it orders itself, but whose metadata it writes
in an arbitrary order) is rewritten with its metadata keys sorted.

The ONNX form is :mod:`seqlm.neural.onnx`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from seqlm.core.atomic import atomic_path
from seqlm.core.errors import DataError, ParamError
from seqlm.data.vocab import Vocab, parse_vocab
from seqlm.neural.checkpoint import (
    FORMAT,
    TEXT_KEYS,
    CheckpointInfo,
    read_checkpoint,
    rebuild,
)
from seqlm.neural.models import NeuralLM
from seqlm.sampling import kept_reading

SAFETENSORS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
METADATA = {"format": "pt", "seqlm": "1"}
CONFIG_TYPES: dict[str, type | tuple[type, ...]] = {
    "format": int,
    "model": str,
    "net": dict,
    "vocab_size": int,
    "vocab_sha256": str,
    "bos_id": int,
    "epoch": int,
    "best_val_perplexity": (int, float),
    "text": dict,
    "vocab": dict,
}
"""config.json's keys and their JSON types."""


# --- safetensors + config.json -------------------------------------------------------------------


def portable_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(model.safetensors, config.json)`` for ``path``: the safetensors file, its config.json
    (the safetensors file is :data:`SAFETENSORS_NAME` beside it), or the folder holding both."""
    p = Path(path)
    if p.is_dir():
        return p / SAFETENSORS_NAME, p / CONFIG_NAME
    if p.suffix.lower() == ".safetensors":
        return p, p.parent / CONFIG_NAME
    if p.suffix.lower() == ".json":
        return p.parent / SAFETENSORS_NAME, p
    raise DataError(
        f"{str(p)!r} is not a portable seqlm model: expected a .safetensors file, its "
        f"{CONFIG_NAME}, or a folder holding {SAFETENSORS_NAME} and {CONFIG_NAME}"
    )


def _finished(path: Path, payload: dict[str, Any]) -> Vocab:
    """The vocabulary of a finished checkpoint (one that carries ``vocab_tsv`` and ``text``)."""
    missing = [
        k
        for k, kind in (("vocab_tsv", str), ("text", dict))
        if not isinstance(payload.get(k), kind)
    ]
    if isinstance(payload.get("text"), dict):
        missing += [f"text.{k}" for k in TEXT_KEYS if not isinstance(payload["text"].get(k), str)]
    if missing:
        raise DataError(
            f"checkpoint {str(path)!r} is not a finished one: it lacks {', '.join(missing)} (the "
            "vocabulary and text reading the train stage adds when training ends); rerun the "
            "train stage"
        )
    vocab = parse_vocab(payload["vocab_tsv"], f"the vocabulary in {str(path)!r}")
    if vocab.checksum() != payload.get("vocab_sha256"):
        raise DataError(
            f"checkpoint {str(path)!r} carries another vocabulary than it was trained on"
        )
    return vocab


def _config(payload: dict[str, Any], vocab: Vocab) -> dict[str, Any]:
    """config.json's content: the payload's keys but the state dict, the vocabulary as lists."""
    config = {k: payload[k] for k in CONFIG_TYPES if k not in ("text", "vocab")}
    config["text"] = kept_reading(payload["text"], TEXT_KEYS)
    config["vocab"] = {"tokens": list(vocab.tokens), "counts": list(vocab.counts)}
    return config


def _own_storage(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors on the CPU, contiguous, each in memory of its own: a tensor whose storage an
    earlier key already holds (a tied matrix), or that is a view into a larger storage, is
    copied (safetensors refuses tensors that share memory)."""
    seen: set[int] = set()
    out = {}
    for key in sorted(state_dict):
        t = state_dict[key]
        if not isinstance(t, torch.Tensor):
            raise DataError(f"state_dict[{key!r}] is a {type(t).__name__}, not a tensor")
        t = t.detach().cpu().contiguous()
        storage = t.untyped_storage()
        if storage.data_ptr() in seen or storage.nbytes() != t.numel() * t.element_size():
            t = t.clone()
            storage = t.untyped_storage()
        seen.add(storage.data_ptr())
        out[key] = t
    return out


def _sort_metadata(path: Path) -> None:
    """Rewrite the header of the safetensors file at ``path`` in place with its metadata keys
    sorted. safetensors orders the tensors itself (by dtype, then name) but writes the metadata
    in a hash map's order, which changes from run to run; the header keeps its length."""
    with open(path, "r+b") as f:
        size = int.from_bytes(f.read(8), "little")
        raw = f.read(size)
        header = json.loads(raw)
        ordered = {"__metadata__": dict(sorted(header.pop("__metadata__", {}).items()))}
        ordered.update(header)
        text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(text) > size:  # the same content in another order: never longer
            raise DataError(f"cannot reorder the safetensors header of {str(path)!r}")
        f.seek(8)
        f.write(text + b" " * (size - len(text)))


def _write(payload: dict[str, Any], vocab: Vocab, out_dir: Path) -> tuple[Path, Path]:
    """Write the two files of ``payload`` into ``out_dir``: both complete, or neither replaced."""
    from safetensors.torch import save_file

    tensors = _own_storage(payload["state_dict"])
    config = json.dumps(_config(payload, vocab), indent=2, sort_keys=True) + "\n"
    st_path, cfg_path = out_dir / SAFETENSORS_NAME, out_dir / CONFIG_NAME
    with atomic_path(st_path) as st_tmp, atomic_path(cfg_path) as cfg_tmp:
        save_file(tensors, st_tmp, metadata=dict(METADATA))
        _sort_metadata(st_tmp)
        cfg_tmp.write_text(config, encoding="utf-8", newline="\n")
    return st_path, cfg_path


def write_portable(
    checkpoint: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None
) -> tuple[Path, Path]:
    """Write the finished checkpoint at ``checkpoint`` as ``model.safetensors`` and
    ``config.json`` (module docstring) into ``out_dir`` (created; default: beside the checkpoint).

    Returns their paths. Refused (DataError) for a checkpoint without its vocabulary and text
    reading. The same checkpoint always gives the same bytes.
    """
    p = Path(checkpoint)
    payload = read_checkpoint(p)
    vocab = _finished(p, payload)
    return _write(payload, vocab, p.parent if out_dir is None else Path(out_dir))


def save_portable(
    model: NeuralLM,
    info: CheckpointInfo,
    vocab: Vocab,
    text: dict[str, str],
    out_dir: str | os.PathLike[str],
) -> tuple[Path, Path]:
    """Write a loaded model (what :func:`load_portable` or
    :func:`~seqlm.neural.checkpoint.load_standalone` return) as the two portable files into
    ``out_dir``, exactly as :func:`write_portable` writes its checkpoint."""
    payload = {
        "format": FORMAT,
        "model": info.model,
        "net": info.net.to_dict(),
        "vocab_size": info.vocab_size,
        "vocab_sha256": info.vocab_sha256,
        "bos_id": info.bos_id,
        "state_dict": model.state_dict(),
        "epoch": info.epoch,
        "best_val_perplexity": info.best_val_perplexity,
        "text": kept_reading(text, TEXT_KEYS),
    }
    return _write(payload, vocab, Path(out_dir))


def _read_config(path: Path) -> dict[str, Any]:
    """config.json, checked to hold every key of :data:`CONFIG_TYPES` with its type."""
    if not path.is_file():
        raise DataError(
            f"{str(path)!r} does not exist; the train stage (or seqlm export --safetensors) "
            f"writes it beside {SAFETENSORS_NAME}"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{str(path)!r} is not JSON ({e})") from e
    if not isinstance(config, dict):
        raise DataError(f"{str(path)!r} is not a seqlm model config (not a JSON object)")
    bad = [
        k
        for k, kind in CONFIG_TYPES.items()
        if not isinstance(config.get(k), kind) or isinstance(config.get(k), bool)
    ]
    if bad:
        raise DataError(
            f"{str(path)!r} is not a seqlm model config: missing or mistyped {', '.join(bad)}"
        )
    if config["format"] != FORMAT:
        raise DataError(f"{str(path)!r} is of format {config['format']}, not {FORMAT}")
    return config


def _config_vocab(path: Path, config: dict[str, Any]) -> Vocab:
    """The vocabulary config.json lists, checked against its ``vocab_sha256`` and ``vocab_size``."""
    tokens, counts = config["vocab"].get("tokens"), config["vocab"].get("counts")
    if not (
        isinstance(tokens, list)
        and isinstance(counts, list)
        and all(isinstance(t, str) for t in tokens)
        and all(isinstance(c, int) and not isinstance(c, bool) for c in counts)
    ):
        raise DataError(
            f"{str(path)!r}: 'vocab' must hold 'tokens' (strings) and 'counts' (integers)"
        )
    try:
        vocab = Vocab(tuple(tokens), tuple(counts))
    except DataError as e:
        raise DataError(f"{str(path)!r}: its vocabulary is not valid: {e}") from e
    if vocab.checksum() != config["vocab_sha256"] or len(vocab) != config["vocab_size"]:
        raise DataError(
            f"{str(path)!r}: its vocabulary ({len(vocab)} entries, sha256 "
            f"{vocab.checksum()[:12]}…) is not the one the model was trained with "
            f"({config['vocab_size']} entries, sha256 {config['vocab_sha256'][:12]}…); the file "
            "was edited or corrupted: export it again"
        )
    return vocab


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file at ``path`` (no pickle), checked to be seqlm's."""
    from safetensors import safe_open

    if not path.is_file():
        raise DataError(
            f"{str(path)!r} does not exist; the train stage (or seqlm export --safetensors) "
            "writes it"
        )
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors' own errors: a truncated or foreign file, say which
        raise DataError(f"{str(path)!r} is not a readable safetensors file ({e})") from e
    if metadata.get("seqlm") != METADATA["seqlm"]:
        raise DataError(
            f"{str(path)!r} is a safetensors file seqlm did not write (its metadata has no "
            f"'seqlm': {METADATA['seqlm']!r})"
        )
    return tensors


def load_portable(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[NeuralLM, CheckpointInfo, Vocab, dict[str, str]]:
    """The model of a ``model.safetensors`` + ``config.json`` pair (``path``: either file, or
    their folder), as :func:`~seqlm.neural.checkpoint.load_standalone` gives a checkpoint's: the
    model (eval mode, on ``device``), what it says of itself, its vocabulary and its text reading.

    Only safetensors and JSON are read. Refused (DataError, naming the file): a file that is not
    safetensors or not JSON, a config whose vocabulary is not the one it was trained with (its
    ``vocab_sha256``), weights that do not fit the config.
    """
    st_path, cfg_path = portable_paths(path)
    config = _read_config(cfg_path)
    vocab = _config_vocab(cfg_path, config)
    text = config["text"]
    missing = [k for k in TEXT_KEYS if not isinstance(text.get(k), str)]
    if missing:
        raise DataError(f"{str(cfg_path)!r}: its 'text' lacks {', '.join(missing)}")
    payload = {**config, "state_dict": _read_tensors(st_path)}
    try:
        model, info = rebuild(st_path, payload, vocab, device)
    except ParamError as e:
        raise DataError(f"{str(cfg_path)!r} holds a configuration seqlm cannot build: {e}") from e
    return model, info, vocab, kept_reading(text, TEXT_KEYS)
