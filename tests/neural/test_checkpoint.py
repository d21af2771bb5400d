"""Checkpoints round-trip as state_dict + config, and refuse another vocabulary or configuration."""

from __future__ import annotations

import fractions
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from seqlm.core.errors import DataError, ParamError
from seqlm.data.vocab import Vocab
from seqlm.neural.checkpoint import (
    add_text_reading,
    load_checkpoint,
    load_standalone,
    read_checkpoint,
    rebuild,
    save_checkpoint,
)
from seqlm.neural.evaluation import target_logprobs
from seqlm.neural.models import build_model
from seqlm.params import NetParams

VOCAB = Vocab(("<unk>", "<bos>", " ", "e", "t", "a"), (0, 0, 4, 3, 2, 1))
NET = NetParams(embedding_size=8, hidden_size=8, num_layers=2, tie_weights=True, window=4)


def saved(
    tmp_path: Path, model_name: str = "lstm", net: NetParams = NET
) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model(model_name, net, len(VOCAB), VOCAB.id_of("<bos>"))
    path = tmp_path / "model" / "model.pt"
    save_checkpoint(
        path, model, model_name=model_name, net=net, vocab=VOCAB, epoch=3, best_val_perplexity=4.5
    )
    return path, model


@pytest.mark.parametrize("model_name", ["rnn", "gru", "lstm", "seq2seq", "transformer"])
def test_a_checkpoint_loads_back_into_the_same_model(tmp_path: Path, model_name: str) -> None:
    path, model = saved(tmp_path, model_name)
    loaded, info = load_checkpoint(path, VOCAB, model_name=model_name, net=NET)
    assert (info.model, info.net, info.epoch, info.best_val_perplexity) == (model_name, NET, 3, 4.5)
    assert info.vocab_sha256 == VOCAB.checksum() and info.bos_id == 1
    assert info.vocab_size == len(VOCAB)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, atol=0, rtol=0)
    ids = np.array([2, 3, 4, 5, 2, 3, 0, 4, 4], dtype=np.int32)
    np.testing.assert_array_equal(target_logprobs(loaded, ids, 1), target_logprobs(model, ids, 1))
    assert not loaded.training


def test_a_checkpoint_is_plain_data_that_loads_with_weights_only(tmp_path: Path) -> None:
    path, _ = saved(tmp_path)
    payload = torch.load(path, weights_only=True)
    assert set(payload) >= {
        "state_dict",
        "model",
        "net",
        "vocab_sha256",
        "epoch",
        "best_val_perplexity",
    }
    assert payload["net"]["hidden_size"] == 8


def test_the_same_model_saves_to_byte_identical_files(tmp_path: Path) -> None:
    first, _ = saved(tmp_path / "one")
    second, _ = saved(tmp_path / "two")
    assert first.read_bytes() == second.read_bytes()


def test_a_checkpoint_from_another_vocabulary_is_refused(tmp_path: Path) -> None:
    path, _ = saved(tmp_path)
    other = Vocab(
        ("<unk>", "<bos>", " ", "e", "t", "o"), (0, 0, 4, 3, 2, 1)
    )  # same size, other tokens
    with pytest.raises(DataError, match="another vocabulary.*retrain"):
        load_checkpoint(path, other)


def test_a_checkpoint_from_another_configuration_is_refused_naming_the_difference(
    tmp_path: Path,
) -> None:
    path, _ = saved(tmp_path)
    net = NetParams(embedding_size=8, hidden_size=8, num_layers=1, tie_weights=True, window=4)
    with pytest.raises(DataError, match=r"num_layers \(checkpoint 2, params 1\)"):
        load_checkpoint(path, VOCAB, net=net)
    with pytest.raises(DataError, match="holds a 'lstm' model but params ask for 'gru'"):
        load_checkpoint(path, VOCAB, model_name="gru")


def test_a_missing_or_foreign_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt", VOCAB)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(DataError, match="not a seqlm checkpoint"):
        load_checkpoint(foreign, VOCAB)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable seqlm checkpoint"):
        load_checkpoint(garbage, VOCAB)


def test_saving_leaves_no_temporary_files(tmp_path: Path) -> None:
    path, _ = saved(tmp_path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]


def rewritten(path: Path, **changes: object) -> Path:
    """The checkpoint at ``path`` saved again with some of its entries changed."""
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, **changes}, path)
    return path


def test_the_vocabulary_refusal_names_both_vocabularies_by_size_and_checksum(
    tmp_path: Path,
) -> None:
    path, _ = saved(tmp_path)
    other = Vocab(VOCAB.tokens[:-1], VOCAB.counts[:-1])
    expected = (
        f"another vocabulary ({len(VOCAB)} entries, sha256 {VOCAB.checksum()[:12]}…) than the "
        f"one given ({len(other)} entries, sha256 {other.checksum()[:12]}…)"
    )
    with pytest.raises(DataError, match=re.escape(expected)):
        load_checkpoint(path, other)


def test_every_difference_in_the_configuration_is_named(tmp_path: Path) -> None:
    path, _ = saved(tmp_path)
    net = NetParams(embedding_size=8, hidden_size=8, num_layers=1, tie_weights=True, window=5)
    expected = "(num_layers (checkpoint 2, params 1); window (checkpoint 4, params 5))"
    with pytest.raises(DataError, match=re.escape(expected)):
        load_checkpoint(path, VOCAB, net=net)


def test_a_checkpoint_holding_pickled_objects_is_refused_without_running_them(
    tmp_path: Path,
) -> None:
    path, _ = saved(tmp_path)
    rewritten(path, epoch=fractions.Fraction(3))  # only plain data loads with weights_only
    with pytest.raises(DataError, match="not a readable seqlm checkpoint"):
        load_checkpoint(path, VOCAB)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"model": "gpt"}, "cannot build: model = 'gpt' is not a model"),
        ({"net": [8, 8]}, "cannot build: params section 'net' must be a mapping"),
        ({"state_dict": {}}, "does not fit its own configuration"),
        ({"format": 2}, "is not a seqlm checkpoint of format 1"),
    ],
)
def test_a_checkpoint_that_cannot_be_rebuilt_is_refused_saying_why(
    tmp_path: Path, changes: dict, message: str
) -> None:
    path, _ = saved(tmp_path)
    with pytest.raises(DataError, match=re.escape(message)):
        load_checkpoint(rewritten(path, **changes), VOCAB)


def test_a_saved_file_that_is_not_a_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([1, 2], path)
    with pytest.raises(DataError, match="not a seqlm checkpoint of format 1"):
        load_checkpoint(path, VOCAB)


def test_the_model_is_loaded_onto_the_device_asked_for(tmp_path: Path) -> None:
    path, _ = saved(tmp_path)
    model, _ = load_checkpoint(path, VOCAB, device="meta")
    assert {p.device.type for p in model.parameters()} == {"meta"}


def spoil(path: Path, how: str) -> dict:
    """Spoil the checkpoint at ``path``, or the call loading it, in way ``how``: the call's keywords."""
    if how == "missing":
        path.unlink()
    elif how == "unreadable":
        path.write_bytes(b"not a zip")
    elif how == "foreign":
        torch.save({"weights": torch.zeros(2)}, path)
    elif how == "unbuildable":
        rewritten(path, model="gpt")
    elif how == "weights that do not fit":
        rewritten(path, state_dict={})
    other_net = NetParams(embedding_size=8, hidden_size=8, num_layers=1, tie_weights=True, window=4)
    return {
        "another vocabulary": {"vocab": Vocab(VOCAB.tokens[:-1], VOCAB.counts[:-1])},
        "another model": {"model_name": "gru"},
        "another net": {"net": other_net},
    }.get(how, {})


@pytest.mark.parametrize(
    "how",
    [
        "missing",
        "unreadable",
        "foreign",
        "another vocabulary",
        "unbuildable",
        "another model",
        "another net",
        "weights that do not fit",
    ],
)
def test_every_refusal_names_the_checkpoint_file(tmp_path: Path, how: str) -> None:
    path, _ = saved(tmp_path)
    with pytest.raises(DataError) as refused:
        load_checkpoint(path, **{"vocab": VOCAB, **spoil(path, how)})
    assert repr(str(path)) in str(refused.value)


# --- checkpoints that carry their vocabulary and text reading ------------------------------------

TEXT = {"clean": "textbook", "token": "char", "line_end": "space"}


def standalone(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """A checkpoint as the train stage leaves it: with its vocabulary and text reading."""
    path, model = saved(tmp_path)
    add_text_reading(path, VOCAB, TEXT)
    return path, model


def without(path: Path, key: str) -> Path:
    """The checkpoint at ``path`` saved again without ``key``."""
    payload = torch.load(path, weights_only=True)
    del payload[key]
    torch.save(payload, path)
    return path


def devices(model: torch.nn.Module) -> set[str]:
    return {p.device.type for p in model.parameters()}


def test_a_standalone_checkpoint_loads_with_its_own_vocabulary_and_text_reading(
    tmp_path: Path,
) -> None:
    path, model = standalone(tmp_path)
    loaded, info, vocab, text = load_standalone(path)
    assert vocab == VOCAB and text == TEXT and (info.model, info.epoch) == ("lstm", 3)
    assert devices(loaded) == {"cpu"} and not loaded.training
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, atol=0, rtol=0)
    loaded, *_ = load_standalone(path, device="meta")
    assert devices(loaded) == {"meta"}


def test_the_text_reading_must_name_every_key_as_a_string(tmp_path: Path) -> None:
    path, _ = saved(tmp_path)
    before = path.read_bytes()
    expected = "the text reading needs clean, token, line_end; missing ['token', 'line_end']"
    with pytest.raises(ParamError, match=f"^{re.escape(expected)}$"):
        add_text_reading(path, VOCAB, {"clean": "textbook", "line_end": 3})
    assert path.read_bytes() == before


def test_a_text_reading_for_another_vocabulary_is_refused_naming_the_file(tmp_path: Path) -> None:
    path, _ = saved(tmp_path)
    other = Vocab(VOCAB.tokens[:-1], VOCAB.counts[:-1])
    expected = f"checkpoint {str(path)!r} was trained with another vocabulary"
    with pytest.raises(DataError, match=f"^{re.escape(expected)}$"):
        add_text_reading(path, other, TEXT)


@pytest.mark.parametrize("key", ["vocab_tsv", "text"])
def test_a_checkpoint_without_its_vocabulary_or_text_reading_is_not_standalone(
    tmp_path: Path, key: str
) -> None:
    path, _ = standalone(tmp_path)
    expected = (
        f"checkpoint {str(path)!r} does not carry its vocabulary and text reading (a checkpoint "
        "the train stage wrote before it added them, or one saved while training); rerun the "
        "train stage, or load it with its vocabulary (seqlm.neural.checkpoint.load_checkpoint)"
    )
    with pytest.raises(DataError, match=f"^{re.escape(expected)}$"):
        load_standalone(without(path, key))


def test_a_standalone_checkpoint_with_a_broken_vocabulary_is_refused_naming_the_file(
    tmp_path: Path,
) -> None:
    path, _ = standalone(tmp_path)
    rewritten(path, vocab_tsv="word,count\n")
    expected = f"the vocabulary in {str(path)!r} is not a seqlm vocabulary"
    with pytest.raises(DataError, match=f"^{re.escape(expected)}"):
        load_standalone(path)


@pytest.mark.parametrize("how", ["another vocabulary", "weights that do not fit"])
def test_every_refusal_to_rebuild_a_standalone_checkpoint_names_the_file(
    tmp_path: Path, how: str
) -> None:
    path, _ = standalone(tmp_path)
    if how == "another vocabulary":
        rewritten(path, vocab_tsv=Vocab(VOCAB.tokens[:-1], VOCAB.counts[:-1]).to_tsv())
    else:
        rewritten(path, state_dict={})
    with pytest.raises(DataError, match=f"^checkpoint {re.escape(repr(str(path)))} "):
        load_standalone(path)


def test_a_payload_is_rebuilt_on_the_cpu_unless_another_device_is_asked_for(tmp_path: Path) -> None:
    path, model = saved(tmp_path)
    payload = read_checkpoint(path)
    rebuilt, info = rebuild(path, payload, VOCAB)
    assert devices(rebuilt) == {"cpu"} and info.model == "lstm"
    for key, value in model.state_dict().items():
        torch.testing.assert_close(rebuilt.state_dict()[key], value, atol=0, rtol=0)
    rebuilt, _ = rebuild(path, payload, VOCAB, device="meta")
    assert devices(rebuilt) == {"meta"}
