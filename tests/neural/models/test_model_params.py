"""The ``model`` key and the ``net`` section: bad values fail with a message naming them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from seqlm.core.errors import ParamError
from seqlm.neural.models import (
    MODELS,
    NetParams,
    build_model,
    check_model,
    check_net_for_model,
    load_model_name,
)
from seqlm.params import build, load_section


def write_params(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_the_five_models_are_offered() -> None:
    assert MODELS == ("rnn", "gru", "lstm", "seq2seq", "transformer")
    for name in MODELS:
        assert check_model(name) == name


def test_an_unknown_model_is_refused_with_the_allowed_names() -> None:
    with pytest.raises(ParamError, match=r"model = 'gpt'.*rnn, gru, lstm, seq2seq, transformer"):
        check_model("gpt")


def test_the_model_key_is_read_from_the_top_of_params(tmp_path: Path) -> None:
    assert load_model_name(write_params(tmp_path, {"model": "gru"})) == "gru"
    with pytest.raises(ParamError, match="no top-level 'model' key"):
        load_model_name(write_params(tmp_path, {"net": {}}))
    with pytest.raises(ParamError, match="'LSTM'"):
        load_model_name(write_params(tmp_path, {"model": "LSTM"}))


@pytest.mark.parametrize("model", ["rnn", "gru", "lstm", "transformer"])
def test_a_bidirectional_language_model_is_refused_because_it_sees_the_future(model: str) -> None:
    with pytest.raises(ParamError, match="net.bidirectional.*left-to-right.*seq2seq"):
        check_net_for_model(model, NetParams(bidirectional=True))
    with pytest.raises(ParamError, match="bidirectional"):
        build_model(model, NetParams(embedding_size=8, hidden_size=8, bidirectional=True), 5, 1)


def test_bidirectional_is_the_seq2seq_encoders_option() -> None:
    model = build_model(
        "seq2seq", NetParams(embedding_size=8, hidden_size=8, bidirectional=True), 5, 1
    )
    assert model.encoder.bidirectional and not model.decoder.bidirectional


def test_tying_weights_needs_equal_embedding_and_hidden_sizes() -> None:
    with pytest.raises(
        ParamError, match=r"tie_weights.*embedding_size == net.hidden_size.*got 64 and 128"
    ):
        NetParams(embedding_size=64, hidden_size=128, tie_weights=True)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("hidden_size", 0, "net.hidden_size = 0 is not allowed; use an integer >= 1 or 'auto'"),
        ("num_layers", 0, "net.num_layers = 0"),
        ("window", 0, "net.window = 0"),
        ("dropout", 1.0, r"net.dropout = 1.0 must be in \[0, 1\)"),
        ("output_dropout", -0.1, "net.output_dropout"),
        ("weight_drop", 1.5, "net.weight_drop"),
        ("cell", "cudnn", "net.cell = 'cudnn'.*fused, scratch"),
        ("bridge", "max", "net.bridge = 'max'.*concat, sum"),
    ],
)
def test_bad_net_values_are_named_with_what_is_allowed(tmp_path: Path, key, value, message) -> None:
    path = write_params(tmp_path, {"net": {key: value}})
    with pytest.raises(ParamError, match=message):
        load_section(NetParams, "net", path)


def test_an_unknown_net_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ParamError, match="unknown key.*hiden_size"):
        load_section(NetParams, "net", write_params(tmp_path, {"net": {"hiden_size": 3}}))


def test_the_net_section_loads_into_its_model(tmp_path: Path) -> None:
    path = write_params(tmp_path, {"net": {"hidden_size": 32, "cell": "scratch"}})
    net = load_section(NetParams, "net", path)
    assert net == NetParams(hidden_size=32, cell="scratch")


def test_a_checkpoints_plain_net_values_rebuild_the_same_params() -> None:
    net = NetParams(embedding_size=16, hidden_size=16, tie_weights=True, dropout=0.5)
    values = net.to_dict()
    plain = (int, float, bool, str)
    assert all(
        isinstance(v, plain) or (isinstance(v, tuple) and all(isinstance(i, int) for i in v))
        for v in values.values()
    )  # net.cutoffs is a tuple of ints (a weights_only checkpoint reads tuples)
    assert build(NetParams, "net", values) == net


def test_net_values_are_checked_strictly(tmp_path: Path) -> None:
    with pytest.raises(ParamError, match="net.hidden_size = '32' is not allowed; use an integer"):
        load_section(NetParams, "net", write_params(tmp_path, {"net": {"hidden_size": "32"}}))
    with pytest.raises(ParamError, match="net.locked = 'yes' must be true or false"):
        NetParams(locked="yes")
    assert NetParams(dropout=0).dropout == 0.0
