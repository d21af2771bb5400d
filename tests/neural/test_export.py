"""Portable models: safetensors + config.json round trips and refusals, ONNX parity, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch

from seqlm.core.errors import DataError, ParamError
from seqlm.data.vocab import Vocab
from seqlm.neural.checkpoint import add_text_reading, load_standalone, save_checkpoint
from seqlm.neural.export import (
    METADATA,
    load_portable,
    save_portable,
    write_portable,
)
from seqlm.neural.models import build_model
from seqlm.neural.onnx import (
    PARITY_TOLERANCE,
    check_onnx,
    export_onnx,
    full_logprobs,
    parity_ids,
)
from seqlm.ops.export import main
from seqlm.params import NetParams

VOCAB = Vocab(
    ("<unk>", "<bos>", " ", "e", "t", "a", "o", "n", "s", "h", "r", "d"),
    (1, 0, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1),
)
BOS = VOCAB.id_of("<bos>")
TEXT = {"clean": "textbook", "token": "char", "line_end": "space"}
ADAPTIVE = {"output": "adaptive", "cutoffs": (4, 8), "div_value": 2.0}
TRANSFORMER = {"heads": 2, "context": 24}

# name -> (model, net overrides); init_range spreads the weights so that the distributions differ
CONFIGS = {
    "lstm-tied": ("lstm", {"tie_weights": True, "num_layers": 2}),
    "gru": ("gru", {}),
    "gru-adaptive": ("gru", ADAPTIVE),
    "rnn-scratch": ("rnn", {"cell": "scratch"}),
    "lstm-adaptive": ("lstm", {"num_layers": 2, **ADAPTIVE}),
    "gru-scratch-adaptive": ("gru", {"cell": "scratch", **ADAPTIVE}),
    "transformer": ("transformer", TRANSFORMER),
    "transformer-rotary": ("transformer", {**TRANSFORMER, "positions": "rotary"}),
    "transformer-shift": ("transformer", {**TRANSFORMER, "token_shift": True}),
    "seq2seq": ("seq2seq", {"window": 4}),
}


def finished(folder: Path, name: str, *, text: bool = True, seed: int = 0) -> Path:
    """A small model of configuration ``name`` saved as the train stage leaves it, in ``folder``."""
    model_name, extra = CONFIGS[name]
    torch.manual_seed(seed)
    net = NetParams(embedding_size=8, hidden_size=8, init_range=0.5, **extra)
    model = build_model(model_name, net, len(VOCAB), BOS)
    path = folder / "model.pt"
    save_checkpoint(
        path, model, model_name=model_name, net=net, vocab=VOCAB, epoch=2, best_val_perplexity=5.25
    )
    if text:
        add_text_reading(path, VOCAB, TEXT)
    return path


# --- safetensors + config.json -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lstm-tied", "gru-adaptive", "transformer"])
def test_the_portable_files_give_the_checkpoints_log_probabilities(
    tmp_path: Path, name: str
) -> None:
    checkpoint = finished(tmp_path, name)
    st, cfg = write_portable(checkpoint)
    assert (st, cfg) == (tmp_path / "model.safetensors", tmp_path / "config.json")
    original, info, vocab, text = load_standalone(checkpoint)
    for path in (st, cfg, tmp_path):  # the safetensors file, its config or their folder
        model, info2, vocab2, text2 = load_portable(path)
        assert (info2, vocab2, text2) == (info, vocab, text) and not model.training
        ids = parity_ids(len(VOCAB), BOS, 20)
        torch.testing.assert_close(
            full_logprobs(model, ids), full_logprobs(original, ids), atol=0, rtol=0
        )
    if name == "lstm-tied":  # stored twice, loaded into one shared matrix
        assert model.head.weight is model.embedding.weight


def test_the_config_is_plain_json_with_the_vocabulary_as_lists(tmp_path: Path) -> None:
    _, cfg = write_portable(finished(tmp_path, "gru"))
    config = json.loads(cfg.read_text(encoding="utf-8"))
    assert config["vocab"] == {"tokens": list(VOCAB.tokens), "counts": list(VOCAB.counts)}
    assert config["text"] == TEXT and config["model"] == "gru" and config["epoch"] == 2
    assert config["vocab_sha256"] == VOCAB.checksum() and config["net"]["hidden_size"] == 8
    assert "state_dict" not in config and "vocab_tsv" not in config


def test_the_portable_files_are_byte_identical_whenever_written(tmp_path: Path) -> None:
    checkpoint = finished(tmp_path / "a", "lstm-tied")
    st, cfg = write_portable(checkpoint)
    first = st.read_bytes(), cfg.read_bytes()
    for _ in range(3):  # safetensors writes its metadata in a varying order: sorted here
        write_portable(checkpoint)
        assert (st.read_bytes(), cfg.read_bytes()) == first
    again = write_portable(finished(tmp_path / "b", "lstm-tied"), tmp_path / "c")
    assert tuple(p.read_bytes() for p in again) == first
    resaved = save_portable(*load_portable(st), tmp_path / "d")  # from the loaded model
    assert tuple(p.read_bytes() for p in resaved) == first
    size = int.from_bytes(first[0][:8], "little")
    header = json.loads(first[0][8 : 8 + size])
    assert header["__metadata__"] == METADATA
    assert first[0][8:].startswith(b'{"__metadata__":{"format":"pt","seqlm":"1"}')


def test_a_checkpoint_not_finished_is_refused_naming_what_it_lacks(tmp_path: Path) -> None:
    checkpoint = finished(tmp_path, "gru", text=False)
    with pytest.raises(DataError, match="not a finished one: it lacks vocab_tsv, text"):
        write_portable(checkpoint)
    assert not (tmp_path / "model.safetensors").exists()
    assert not (tmp_path / "config.json").exists()


def test_a_corrupted_safetensors_file_is_refused(tmp_path: Path) -> None:
    st, _ = write_portable(finished(tmp_path, "gru"))
    data = st.read_bytes()
    st.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(DataError, match="model.safetensors.*not a readable safetensors file"):
        load_portable(tmp_path)
    st.write_bytes(b"\x00" * 64)  # not safetensors at all
    with pytest.raises(DataError, match="not a readable safetensors file"):
        load_portable(st)


def test_a_config_whose_vocabulary_was_edited_is_refused(tmp_path: Path) -> None:
    _, cfg = write_portable(finished(tmp_path, "gru"))
    good = json.loads(cfg.read_text(encoding="utf-8"))
    edits = [
        {**good, "vocab_sha256": "0" * 64},  # the checksum edited
        {**good, "vocab": {**good["vocab"], "tokens": ["<unk>", "<bos>", "x", *VOCAB.tokens[3:]]}},
    ]
    for config in edits:
        cfg.write_text(json.dumps(config), encoding="utf-8")
        with pytest.raises(DataError, match="config.json.*not the one the model was trained with"):
            load_portable(cfg)


def test_weights_that_do_not_fit_the_config_and_broken_configs_are_refused(
    tmp_path: Path,
) -> None:
    _, cfg = write_portable(finished(tmp_path, "gru"))
    good = json.loads(cfg.read_text(encoding="utf-8"))
    cfg.write_text(json.dumps({**good, "net": {**good["net"], "num_layers": 2}}), encoding="utf-8")
    with pytest.raises(DataError, match="model.safetensors.*does not fit its own configuration"):
        load_portable(tmp_path)
    cfg.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="config.json.*is not JSON"):
        load_portable(tmp_path)
    cfg.write_text(json.dumps({k: v for k, v in good.items() if k != "bos_id"}), encoding="utf-8")
    with pytest.raises(DataError, match="missing or mistyped bos_id"):
        load_portable(tmp_path)
    with pytest.raises(DataError, match="not a portable seqlm model"):
        load_portable(tmp_path / "model.pt")


# --- ONNX ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "lstm-tied",
        "gru",
        "rnn-scratch",
        "gru-scratch-adaptive",
        "lstm-adaptive",
        "transformer",
        "transformer-rotary",
        "transformer-shift",
    ],
)
def test_the_onnx_graph_gives_torchs_log_probabilities(tmp_path: Path, name: str) -> None:
    model, *_ = load_standalone(finished(tmp_path, name))
    out = export_onnx(model, tmp_path / "model.onnx")
    for length in (24, 7, 1):  # the length is dynamic: the graph was traced on another one
        assert check_onnx(model, out, parity_ids(len(VOCAB), BOS, length, seed=length)) <= 1e-5
    assert PARITY_TOLERANCE == 1e-4


def test_the_onnx_graph_reads_ids_and_gives_logprobs(tmp_path: Path) -> None:
    model, *_ = load_standalone(finished(tmp_path, "lstm-tied"))
    out = export_onnx(model, tmp_path / "model.onnx")
    graph = onnx.load(str(out)).graph
    (ids,), (logprobs,) = graph.input, graph.output
    assert (ids.name, ids.type.tensor_type.elem_type) == ("ids", onnx.TensorProto.INT64)
    assert (logprobs.name, logprobs.type.tensor_type.elem_type) == (
        "logprobs",
        onnx.TensorProto.FLOAT,
    )
    dims = [d.dim_value or d.dim_param for d in logprobs.type.tensor_type.shape.dim]
    assert dims == [1, "T", len(VOCAB)]
    first = out.read_bytes()
    assert export_onnx(model, out).read_bytes() == first  # deterministic


def test_onnx_refuses_seq2seq_and_a_transformer_input_beyond_its_context(tmp_path: Path) -> None:
    seq2seq, *_ = load_standalone(finished(tmp_path / "s", "seq2seq"))
    with pytest.raises(ParamError, match="supports rnn, gru, lstm and transformer, not seq2seq"):
        export_onnx(seq2seq, tmp_path / "s.onnx")
    assert not (tmp_path / "s.onnx").exists()
    transformer, *_ = load_standalone(finished(tmp_path / "t", "transformer"))
    out = export_onnx(transformer, tmp_path / "t.onnx")
    with pytest.raises(ParamError, match="25 ids exceed the transformer's context of 24"):
        check_onnx(transformer, out, parity_ids(len(VOCAB), BOS, 25))


# --- seqlm export --------------------------------------------------------------------------------


def test_the_cli_writes_both_forms_and_reads_either(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = finished(tmp_path / "run", "lstm-adaptive")
    out_dir, onnx_path = tmp_path / "export" / "st", tmp_path / "export" / "model.onnx"
    argv = ["--model", str(checkpoint), "--onnx", str(onnx_path), "--safetensors", str(out_dir)]
    assert main(argv) == 0
    assert (out_dir / "model.safetensors").is_file() and (out_dir / "config.json").is_file()
    assert onnx_path.is_file()
    printed = capsys.readouterr().out
    assert "on 32 ids, max abs difference" in printed
    # the safetensors folder as the source: the same ONNX graph
    again = tmp_path / "again.onnx"
    assert main(["--model", str(out_dir), "--onnx", str(again)]) == 0
    assert again.read_bytes() == onnx_path.read_bytes()


def test_the_cli_reports_errors_without_a_traceback_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "model.onnx"
    assert main(["--model", str(tmp_path / "missing.pt"), "--onnx", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seqlm export: error: ") and "does not exist" in err
    checkpoint = finished(tmp_path / "s", "seq2seq")
    assert main(["--model", str(checkpoint), "--onnx", str(out)]) == 2
    assert "supports rnn, gru, lstm and transformer" in capsys.readouterr().err
    # a graph that fails the parity check is not left behind
    import seqlm.ops.export as cli

    monkeypatch.setattr(cli, "check_onnx", lambda *_: 0.5)
    assert main(["--model", str(finished(tmp_path / "g", "gru")), "--onnx", str(out)]) == 2
    assert "differ from torch's by up to 0.5" in capsys.readouterr().err
    assert list(tmp_path.glob("*.onnx*")) == []
    with pytest.raises(SystemExit) as exit_info:  # neither --onnx nor --safetensors
        main(["--model", str(checkpoint)])
    assert exit_info.value.code == 2
    assert "give --onnx OUT.onnx, --safetensors DIR, or both" in capsys.readouterr().err
