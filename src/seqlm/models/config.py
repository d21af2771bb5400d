"""Which neural model, and its shape: the top-level ``model`` key and the ``net`` section.

``model`` picks the architecture (``dvc exp run -S model=gru``)::

    rnn | gru | lstm   embedding → stacked recurrent layers → linear   (a left-to-right LM)
    seq2seq            LSTM encoder of the previous window → LSTM decoder of the next one

``net`` holds the hyperparameters every architecture shares. They are part of a checkpoint: a model
is rebuilt from ``(model, net)`` and its ``state_dict``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Literal

from seqlm.config import check_choices, check_integers
from seqlm.errors import ParamError

MODELS = ("rnn", "gru", "lstm", "seq2seq")
RECURRENT_MODELS = ("rnn", "gru", "lstm")
CELLS = ("fused", "scratch")
BRIDGES = ("concat", "sum")
DROPOUTS = ("dropout", "embedding_dropout", "input_dropout", "output_dropout", "weight_drop")


def check_model(name: object) -> str:
    """Return ``name`` if it is one of :data:`MODELS`, else raise ParamError naming it."""
    if not isinstance(name, str) or name not in MODELS:
        raise ParamError(f"model = {name!r} is not a model; choose one of: {', '.join(MODELS)}")
    return name


def _check_fraction(key: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ParamError(f"net.{key} = {value} must be in [0, 1) (a dropout probability)")


@dataclass(frozen=True)
class NetParams:
    """The ``net`` section of ``params.yaml``.

    * ``embedding_size``, ``hidden_size``, ``num_layers``: the network's shape;
    * ``dropout``: between stacked recurrent layers (as ``nn.LSTM(dropout=...)``);
    * ``embedding_dropout``: drops whole rows of the embedding matrix (every occurrence of a token
      at once; AWD-LSTM's ``dropoute``), rescaling the rest;
    * ``input_dropout``: on the embeddings fed to the first layer; ``output_dropout``: on the last
      layer's output, before the linear head. Both are *locked* (variational: one mask per sequence,
      the same at every time step) when ``locked`` is true, plain dropout otherwise;
    * ``weight_drop``: DropConnect on the hidden-to-hidden weights ``weight_hh_l{k}`` (AWD-LSTM),
      one mask per forward pass;
    * ``tie_weights``: the output layer shares the embedding matrix (needs
      ``embedding_size == hidden_size``);
    * ``cell``: ``fused`` (torch's ``nn.RNN/GRU/LSTM``) or ``scratch`` (:mod:`seqlm.models.cells`,
      the notes' equations); the two have the same parameters and give the same outputs;
    * ``bidirectional``: seq2seq's encoder only (an LM that reads both ways sees the future);
    * ``window``: seq2seq's window length (the textbook's ``num_steps``): the encoder reads one
      window, the decoder predicts the next;
    * ``bridge``: how a bidirectional encoder's two final states become the decoder's initial state:
      ``concat`` (concatenate, then a linear map per layer) or ``sum``.
    """

    embedding_size: int = 128
    hidden_size: int = 512
    num_layers: int = 1
    dropout: float = 0.0
    embedding_dropout: float = 0.05
    input_dropout: float = 0.1
    output_dropout: float = 0.3
    weight_drop: float = 0.25
    locked: bool = True
    tie_weights: bool = False
    cell: Literal["fused", "scratch"] = "fused"
    bidirectional: bool = False
    window: int = 64
    bridge: Literal["concat", "sum"] = "concat"

    def __post_init__(self) -> None:
        check_integers("net", self, dict.fromkeys(("embedding_size", "hidden_size", "num_layers",
                                                   "window"), 1))
        for key in DROPOUTS:
            _check_fraction(key, getattr(self, key))
        check_choices("net", self, {"cell": CELLS, "bridge": BRIDGES})
        if self.tie_weights and self.embedding_size != self.hidden_size:
            raise ParamError(
                f"net.tie_weights = true needs net.embedding_size == net.hidden_size (the output "
                f"layer reuses the embedding matrix), got {self.embedding_size} and "
                f"{self.hidden_size}; make them equal or set tie_weights: false"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for checkpoints and logs)."""
        return asdict(self)


def check_net_for_model(model: str, net: NetParams) -> None:
    """Refuse combinations that make no sense for ``model`` (raises ParamError)."""
    check_model(model)
    if net.bidirectional and model in RECURRENT_MODELS:
        raise ParamError(
            f"net.bidirectional = true is not allowed with model = {model!r}: a bidirectional "
            f"network reads the text right-to-left too, so the state that predicts a token has "
            f"already seen it; a language model must be left-to-right. Bidirectional is the "
            f"seq2seq encoder's option (model = 'seq2seq'), whose encoder reads only the previous "
            f"window"
        )


def load_model_name(path: str | os.PathLike[str]) -> str:
    """The top-level ``model`` key of the params file, checked against :data:`MODELS`."""
    from seqlm.config import read_params

    params = read_params(path)
    if "model" not in params:
        raise ParamError(
            f"params file {str(path)!r} has no top-level 'model' key; "
            f"choose one of: {', '.join(MODELS)}"
        )
    return check_model(params["model"])
