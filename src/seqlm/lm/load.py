"""``seqlm.load(path)``: any model the pipeline trains, as a :class:`~seqlm.lm.base.LanguageModel`.

What ``path`` may be (a folder is looked into for the first file of this list it holds):

* ``model.pt``: a neural checkpoint of the train stage (read with ``weights_only=True``: no
  pickled code is run); it carries its vocabulary and how raw text becomes its tokens;
* ``model.safetensors`` or its ``config.json``: the same model, written beside the checkpoint
  (safetensors and JSON only);
* ``model.npz``: the ngram stage's model (``data/ngram/``);
* ``ensemble.json``: the ensemble the evaluate stage fitted (``data/ensemble.json``): its members'
  files and weights;
* ``*.arpa``: an ARPA file (KenLM's ``lmplz``, SRILM, ``seqlm.ngram.write_arpa``), read as KenLM
  reads it: whitespace-separated words, each line a sentence.

Anything else is refused with a :class:`~seqlm.core.errors.DataError` saying what was found and
what is accepted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from seqlm.core.errors import DataError
from seqlm.lm.base import LanguageModel
from seqlm.lm.models import ArpaLM, DynamicSettings, EnsembleLM, Member, NeuralModel, NgramLM
from seqlm.ngram.dynamic import NgramAdaptation
from seqlm.sampling import TextFormat, format_of_reading

ENSEMBLE_FORMAT = "seqlm-ensemble/1"
LOOKED_FOR = ("model.pt", "model.safetensors", "model.npz", "ensemble.json")
ACCEPTED = (
    "a neural checkpoint (.pt), its safetensors file or config.json, an n-gram model (.npz), "
    "an ensemble (ensemble.json), an ARPA file (.arpa), or a folder holding one of "
    + ", ".join(LOOKED_FOR)
)


def text_format(text: dict[str, str]) -> TextFormat:
    """The text reading a model file carries, as a :class:`~seqlm.sampling.TextFormat`."""
    return format_of_reading(text)


def resolve(path: str | os.PathLike[str]) -> Path:
    """The model file ``path`` names (a folder's first file of :data:`LOOKED_FOR`)."""
    p = Path(path)
    if p.is_dir():
        for name in LOOKED_FOR:
            if (p / name).is_file():
                return p / name
        raise DataError(f"the folder {str(p)!r} holds no model; expected {ACCEPTED}")
    if not p.exists():
        raise DataError(f"{str(p)!r} does not exist; expected {ACCEPTED}")
    return p


def load(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LanguageModel:
    """The model at ``path`` (see the module docstring), ready to score and generate."""
    p = resolve(path)
    suffix = p.suffix.lower()
    if suffix == ".pt":
        return load_neural(p, device)
    if suffix == ".safetensors" or p.name == "config.json":
        from seqlm.neural.export import load_portable

        model, info, vocab, text = load_portable(p, device)
        return NeuralModel(info.model, model, info, vocab, text_format(text))
    if suffix == ".npz":
        from seqlm.ngram.store import load_ngram

        ngram, vocab, text = load_ngram(p)
        return NgramLM(f"{ngram.order}-gram", ngram, vocab, text_format(text))
    if suffix == ".arpa":
        from seqlm.ngram.arpa import read_arpa

        return ArpaLM(p.stem, read_arpa(p), TextFormat(token="word", line_end="eos", clean="none"))
    if suffix == ".json":
        return load_ensemble(p, device)
    raise DataError(f"{str(p)!r} is not a model seqlm can load; expected {ACCEPTED}")


def load_neural(p: Path, device: str | torch.device = "cpu") -> NeuralModel:
    """A train-stage checkpoint that carries its vocabulary and text reading."""
    from seqlm.neural.checkpoint import load_standalone

    model, info, vocab, text = load_standalone(p, device)
    return NeuralModel(info.model, model, info, vocab, text_format(text))


def read_manifest(p: Path) -> dict[str, Any]:
    """The ensemble manifest at ``p``, checked."""
    try:
        manifest = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{str(p)!r} is not JSON ({e}); expected {ACCEPTED}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != ENSEMBLE_FORMAT:
        raise DataError(
            f"{str(p)!r} is not a seqlm ensemble (its 'format' is not {ENSEMBLE_FORMAT!r}); "
            f"expected {ACCEPTED}"
        )
    return manifest


def load_ensemble(p: Path, device: str | torch.device = "cpu") -> EnsembleLM:
    """The ensemble of an evaluated run: each member loaded from its file (relative to the
    manifest's folder), a checkpoint read once however many members use it."""
    manifest = read_manifest(p)
    loaded: dict[Path, LanguageModel] = {}
    members = []
    for entry in manifest["members"]:
        file = (p.parent / entry["path"]).resolve()
        if file not in loaded:
            try:
                loaded[file] = load(file, device)
            except DataError as e:
                raise DataError(f"ensemble {str(p)!r}, member {entry['name']!r}: {e}") from e
        dyn = entry.get("dynamic")
        settings: DynamicSettings | NgramAdaptation | None = None
        if dyn is not None and isinstance(loaded[file], NgramLM):
            settings = NgramAdaptation(**dyn)
        elif dyn is not None:
            settings = DynamicSettings(**dyn)
        members.append(Member(entry["name"], loaded[file], float(entry["weight"]), settings))
    return EnsembleLM("ensemble", members)


def ensemble_manifest(out: str | os.PathLike[str], members: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest the evaluate stage writes at ``out``: ``members`` (name, path, weight and the
    dynamic settings of an adapting member) with their paths made relative to ``out``'s folder."""
    folder = Path(out).resolve().parent
    listed = []
    for m in members:
        entry = {**m, "path": os.path.relpath(Path(m["path"]).resolve(), folder)}
        listed.append(entry)
    return {"format": ENSEMBLE_FORMAT, "members": listed}
