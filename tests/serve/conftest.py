"""Fixtures for ``seqlm serve``: a tiny run's models (trained once per session), the app over
them, and the real server over them plus a slowed-down model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from serve_support import LiveServer, SlowModel, TestClient, client_for

from pipeline_support import TINY_TEXT
from seqlm.lm.base import LanguageModel
from seqlm.lm.load import ensemble_manifest
from seqlm.neural.checkpoint import add_text_reading
from seqlm.ngram import count_stream, fit_ngram
from seqlm.ngram.store import save_ngram
from seqlm.serve import load_models
from seqlm.serve.app import Limits, create_app
from tiny_pipeline import TINY_TRAIN, train_tiny

READING = {"clean": "textbook", "token": "char", "line_end": "space"}


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder as the pipeline leaves one: ``data/model/model.pt`` (a tiny LSTM),
    ``data/ngram/model.npz`` (a 4-gram) and ``data/ensemble.json`` (the two mixed)."""
    root = tmp_path_factory.mktemp("serve-run")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # seconds, not tens of seconds, on a shared machine
    try:
        params = TINY_TRAIN.model_copy(update={"epochs": 1})
        _, ckpt, vocab, splits = train_tiny(root, TINY_TEXT * 4, params=params)
    finally:
        torch.set_num_threads(threads)
    add_text_reading(ckpt, vocab, READING)
    model = root / "data" / "model" / "model.pt"
    model.parent.mkdir(parents=True)
    ckpt.rename(model)
    counts = count_stream(splits["train"].ids, len(vocab), 4, vocab.id_of("<bos>"))
    ngram = root / "data" / "ngram" / "model.npz"
    save_ngram(fit_ngram(counts, 4), vocab, READING, ngram)
    manifest = root / "data" / "ensemble.json"
    members = [
        {"name": "ngram", "path": str(ngram), "weight": 0.4},
        {"name": "lstm", "path": str(model), "weight": 0.6},
    ]
    manifest.write_text(json.dumps(ensemble_manifest(manifest, members)), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def models(run_dir: Path) -> dict[str, LanguageModel]:
    """The run's models, by the names ``seqlm serve`` gives them: lstm, ngram, ensemble."""
    return load_models(run_dir, [])


@pytest.fixture(scope="session")
def client(models: dict[str, LanguageModel]) -> TestClient:
    """The app over the run's models, with the default limits."""
    return client_for(models)


@pytest.fixture(scope="module")
def live(models: dict[str, LanguageModel]) -> Iterator[LiveServer]:
    """The run's models plus ``slow`` (the LSTM at 20 ms a token) on the real server, with
    requests bodies limited to 100 characters' worth (4,696 bytes)."""
    served = {**models, "slow": SlowModel(models["lstm"], 0.02)}
    with LiveServer(create_app(served, Limits(max_chars=100, timeout=20))) as server:
        yield server
