"""Tiny training runs: the data stages' outputs for a tiny text, in memory or as files, and a
small network trained on them (for the training tests)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from seqlm.core.atomic import save_npy
from seqlm.data.corpus import PreparedData, ids_path, prepare_text, tokens_path
from seqlm.data.tokens import write_token_file
from seqlm.data.vocab import save_vocab
from seqlm.neural.loop import train
from seqlm.params import NetParams, TokenizeParams, TrainParams

CHAR_80_10_10 = TokenizeParams(
    token="char", train_fraction=0.8, val_fraction=0.1, test_fraction=0.1
)


def tiny_data(text: str) -> PreparedData:
    """The pipeline's char-level data for ``text`` (80/10/10 by line): vocab and splits."""
    return prepare_text(text, CHAR_80_10_10)


def write_tiny_pipeline(tmp_path: Path, text: str, **sections) -> dict[str, Path]:
    """The files the data stages would leave, plus a params.yaml with tiny model settings."""
    data = tiny_data(text)
    paths = {
        "vocab": tmp_path / "data" / "vocab.tsv",
        "corpus": tmp_path / "data" / "corpus",
        "tokens": tmp_path / "data" / "tokens",
        "params": tmp_path / "params.yaml",
    }
    save_vocab(data.vocab, paths["vocab"])
    for name, split in data.splits.items():
        save_npy(ids_path(paths["corpus"], name), split.ids)
        write_token_file(
            tokens_path(paths["tokens"], name), [data.token_lines[name]], CHAR_80_10_10
        )
    params = {
        "model": "lstm",
        "clean": {"mode": "textbook"},
        "tokenize": {
            "token": "char",
            "train_fraction": 0.8,
            "val_fraction": 0.1,
            "test_fraction": 0.1,
        },
        "net": {"embedding_size": 8, "hidden_size": 16, "window": 8},
        "train": {"batch_size": 4, "num_steps": 8, "epochs": 2, "lr": 0.01},
        "generate": {"prefixes": ["the time", ""], "length": 20, "seed": 0},
        "evaluate": {
            "dynamic": True,
            "dynamic_update": "sgd",
            "dynamic_lrs": [0.1, 1.0],
            "dynamic_decays": [0.0, 0.01],
            "dynamic_segment": 8,
            "members": [],
        },
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            params.setdefault(key, {}).update(value)
        else:
            params[key] = value
    paths["params"].write_text(yaml.safe_dump(params))
    return paths


TINY_NET = NetParams(embedding_size=8, hidden_size=16, output_dropout=0.1, window=8)
TINY_TRAIN = TrainParams(batch_size=4, num_steps=8, epochs=2, lr=0.01, warmup_steps=2)
NO_DROPOUT = NetParams(
    embedding_size=8,
    hidden_size=16,
    window=8,
    embedding_dropout=0.0,
    input_dropout=0.0,
    output_dropout=0.0,
    weight_drop=0.0,
)


def train_tiny(
    tmp_path: Path,
    text: str,
    model: str = "lstm",
    net: NetParams = TINY_NET,
    params: TrainParams = TINY_TRAIN,
    **kw,
):
    """Train ``model`` on ``text``'s train split: the result, the checkpoint, vocab and splits."""
    data = tiny_data(text)
    ckpt = tmp_path / f"{model}.pt"
    result = train(
        model,
        net,
        params,
        data.vocab,
        data.splits["train"],
        data.splits["val"],
        checkpoint_path=ckpt,
        **kw,
    )
    return result, ckpt, data.vocab, data.splits


def weights_after_each_step(
    tmp_path: Path, text: str, steps: int, **kw
) -> list[dict[str, torch.Tensor]]:
    """The raw weights after each of the first ``steps`` optimizer steps (training stops there)."""
    seen: list[dict[str, torch.Tensor]] = []

    def on_step(step: int, model: torch.nn.Module) -> bool:
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return step == steps

    train_tiny(tmp_path, text, on_step=on_step, **kw)
    return seen
