"""An n-gram model as one file: the count tables of its order, its smoothing, its vocabulary and how
raw text becomes its tokens — everything :func:`seqlm.load` needs to score and generate.

``model.npz`` (numpy's archive, read with ``allow_pickle=False``: no pickled objects) holds, for
each order ``k = 1 .. order``, the arrays ``keys_k``, ``suffix_k``, ``raw_k`` and
``starts_with_bos_k`` of :class:`~seqlm.ngram.counts.NgramCounts`, and ``meta``: a JSON string::

    {"format": 1, "smoothing": "kneser_ney", "order": 7, "laplace_alpha": 1.0,
     "vocab_size": 29, "bos_id": 1, "sequences": 1, "tokens": 150318,
     "vocab_tsv": "token\\tcount\\n...", "text": {"clean": "textbook", "token": "char", ...}}

A model rebuilt from it is the one the stage fitted: the same tables give the same probabilities,
to the last bit (the ngram stage's test checks it against its saved log-probabilities). A pruned
Kneser-Ney model (``meta["prune"]`` non-zero, :mod:`seqlm.ngram.pruning`) keeps only its kept
n-grams, so it also holds what they no longer give: ``complete_k`` (each n-gram's interpolated
probability) and ``backoff_k`` (each as a context's back-off weight). The ngram stage's dynamically
evaluated model also records how it adapted (``meta["adapt"]``: ``segment``, ``refits``). A model
counted in shards (its tables larger than memory) is one such archive too, written and read a shard
at a time (``meta["shards"]``, :mod:`seqlm.ngram.sharded_store`); :func:`load_ngram` reads either.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from seqlm.core.atomic import atomic_path
from seqlm.core.errors import DataError
from seqlm.data.vocab import Vocab
from seqlm.ngram.archive import FORMAT, TABLES, npz_bytes, read_counts, read_meta
from seqlm.ngram.kneser_ney import KneserNeyModel
from seqlm.ngram.laplace import LaplaceModel
from seqlm.ngram.model import NgramModel

MODEL_FILE = "model.npz"


def save_ngram(
    model: NgramModel,
    vocab: Vocab,
    text: dict[str, str],
    path: str | os.PathLike[str],
    adapts: dict[str, int] | None = None,
) -> Path:
    """Write ``model`` (its tables up to its order), its vocabulary and its text reading; ``adapts``:
    how the model was evaluated dynamically (``meta["adapt"]``, :mod:`seqlm.ngram.dynamic`)."""
    counts = model.counts
    if counts.vocab_size != len(vocab):
        raise DataError(f"the model has {counts.vocab_size} ids, the vocabulary {len(vocab)}")
    meta = {
        "format": FORMAT,
        "smoothing": model.smoothing,
        "order": model.order,
        "laplace_alpha": float(getattr(model, "alpha", 1.0)),
        "vocab_size": counts.vocab_size,
        "bos_id": counts.bos_id,
        "sequences": counts.sequences,
        "tokens": counts.tokens,
        "vocab_tsv": vocab.to_tsv(),
        "text": dict(text),
        **({} if adapts is None else {"adapt": dict(adapts)}),
    }
    arrays: dict[str, np.ndarray] = {}
    for k in range(1, model.order + 1):
        for name in TABLES:
            arrays[f"{name}_{k}"] = np.ascontiguousarray(getattr(counts, name)[k - 1])
    if isinstance(model, KneserNeyModel) and any(model.prune):
        meta["prune"] = list(model.prune)
        for k in range(1, model.order + 1):
            arrays[f"complete_{k}"] = model.complete[k - 1]
            if k < model.order:
                arrays[f"backoff_{k}"] = model.backoff[k - 1]
    arrays = {"meta": np.array(json.dumps(meta, sort_keys=True)), **arrays}
    with atomic_path(path) as tmp:
        tmp.write_bytes(npz_bytes(arrays))
    return Path(path)


def load_ngram(path: str | os.PathLike[str]) -> tuple[NgramModel, Vocab, dict[str, str]]:
    """The model saved by :func:`save_ngram`, its vocabulary and its text reading."""
    p = Path(path)
    if p.is_dir():
        p = p / MODEL_FILE
    if not p.is_file():
        raise DataError(f"n-gram model {str(p)!r} does not exist; run the ngram stage first")
    try:
        archive = np.load(p, allow_pickle=False)
    except Exception as e:  # not a zip, a truncated file: say which
        raise DataError(f"{str(p)!r} is not a readable seqlm n-gram model ({e})") from e
    with archive:
        meta = read_meta(archive, repr(str(p)))
        if "shards" in meta:
            from seqlm.ngram.sharded_store import load_sharded

            return load_sharded(p, archive, meta)
        order = int(meta["order"])
        pruned = any(meta.get("prune", ()))
        estimates = ("complete", "backoff") if pruned else ()
        counts, vocab = read_counts(archive, meta, p, order)
        try:
            kept = {
                name: tuple(archive[f"{name}_{k}"] for k in range(1, order + (name == "complete")))
                for name in estimates
            }
        except KeyError as e:
            raise DataError(f"{str(p)!r} lacks the table {e} of its order {order}") from e
    if meta["smoothing"] == "kneser_ney" and pruned:
        model: NgramModel = KneserNeyModel.restored(
            counts, order, kept["complete"], kept["backoff"], meta["prune"]
        )
    elif meta["smoothing"] == "kneser_ney":
        model = KneserNeyModel(counts, order)
    elif meta["smoothing"] == "laplace":
        model = LaplaceModel(counts, order, float(meta["laplace_alpha"]))
    else:
        raise DataError(f"{str(p)!r}: unknown smoothing {meta['smoothing']!r}")
    return model, vocab, {k: str(v) for k, v in meta["text"].items()}
