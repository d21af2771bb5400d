"""Typed parameters: one frozen dataclass per ``params.yaml`` section, all of them here.

``load_section`` reads one section and builds its dataclass. Unknown keys, missing required keys and
values of the wrong type are errors that name the key, so a typo in ``params.yaml`` (or in
``dvc exp run -S``) fails loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from seqlm.core.errors import ParamError

T = TypeVar("T")

DEFAULT_PARAMS = "params.yaml"


def read_params(path: str | os.PathLike[str] = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read the whole params file as a mapping."""
    p = Path(path)
    if not p.is_file():
        raise ParamError(f"params file {str(p)!r} does not exist")
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ParamError(f"params file {str(p)!r} must hold a mapping, got {type(data).__name__}")
    return data


def _check_type(section: str, key: str, value: Any, annotation: Any) -> Any:
    """Return ``value`` converted to ``annotation`` where that is lossless, else raise ParamError."""
    origin = typing.get_origin(annotation)
    where = f"{section}.{key}"
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(annotation):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check_type(section, key, value, option)
            except ParamError as e:
                errors.append(str(e))
        raise ParamError(f"{where} = {value!r} has the wrong type: expected {annotation}")
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise ParamError(
                f"{where} = {value!r} is not allowed; choose one of: {', '.join(map(str, allowed))}"
            )
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ParamError(f"{where} = {value!r} must be a list")
        (item_type, *_rest) = typing.get_args(annotation) or (Any,)
        return tuple(_check_type(section, key, v, item_type) for v in value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ParamError(f"{where} = {value!r} must be true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(f"{where} = {value!r} must be an integer")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(f"{where} = {value!r} must be a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ParamError(f"{where} = {value!r} must be a string")
        return value
    raise TypeError(f"unsupported annotation {annotation!r} for {where}")  # programming error


def check_integers(section: str, obj: object, minimums: Mapping[str, int]) -> None:
    """Raise ParamError unless every ``obj.<key>`` is an integer >= ``minimums[key]``.

    For the sections' ``__post_init__``: a dataclass built directly, not through :func:`build`,
    gets the same checks and messages.
    """
    for key, low in minimums.items():
        value = getattr(obj, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ParamError(f"{section}.{key} = {value!r} must be an integer >= {low}")


def check_choices(section: str, obj: object, choices: Mapping[str, Sequence[str]]) -> None:
    """Raise ParamError unless every ``obj.<key>`` is one of ``choices[key]``."""
    for key, allowed in choices.items():
        value = getattr(obj, key)
        if value not in allowed:
            raise ParamError(
                f"{section}.{key} = {value!r} is not allowed; choose one of: {', '.join(allowed)}"
            )


def build(cls: type[T], section: str, values: Mapping[str, Any]) -> T:
    """Build dataclass ``cls`` from ``values``, naming any unknown, missing or mistyped key."""
    if not isinstance(values, Mapping):
        raise ParamError(f"params section {section!r} must be a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ParamError(
            f"unknown key(s) in params section {section!r}: {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        if name in values:
            kwargs[name] = _check_type(section, name, values[name], hints[name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ParamError(f"params section {section!r} is missing required key {name!r}")
    return cls(**kwargs)


def load_section(cls: type[T], section: str, path: str | os.PathLike[str] = DEFAULT_PARAMS) -> T:
    """Read section ``section`` of the params file into dataclass ``cls``."""
    params = read_params(path)
    if section not in params:
        raise ParamError(f"params file {str(path)!r} has no section {section!r}")
    return build(cls, section, params[section] or {})


# --- model and net ------------------------------------------------------------------------------

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
    * ``cell``: ``fused`` (torch's ``nn.RNN/GRU/LSTM``) or ``scratch`` (:mod:`seqlm.neural.models.cells`,
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
    params = read_params(path)
    if "model" not in params:
        raise ParamError(
            f"params file {str(path)!r} has no top-level 'model' key; "
            f"choose one of: {', '.join(MODELS)}"
        )
    return check_model(params["model"])


# --- train ---------------------------------------------------------------------------------------

DEVICES = ("auto", "cpu", "cuda")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "plateau")
SAMPLINGS = ("sequential", "random")


@dataclass(frozen=True)
class TrainParams:
    """The ``train`` section of ``params.yaml``.

    * ``seed``: seeds weights, dropout masks and batch order (same params → same metrics);
    * ``device``: ``auto`` takes a GPU when there is one; ``threads``: CPU threads (0 = torch's
      default);
    * ``batch_size`` rows of ``num_steps`` tokens per minibatch (seq2seq: windows of
      ``net.window``);
    * ``sampling``: ``sequential`` (state carried across batches) or ``random`` (textbook's two
      iterators); seq2seq always shuffles its windows;
    * ``optimizer``: ``sgd`` (with ``momentum``), ``adam``, ``adamw`` (decoupled ``weight_decay``;
      for sgd and adam it is L2); ``lr``; ``clip``: max gradient norm (0 = off);
    * ``schedule``: ``constant``, ``cosine`` (to ``min_lr`` at the last step of ``epochs``) or
      ``plateau`` (× ``plateau_factor`` when val perplexity has not improved for
      ``plateau_patience`` epochs); ``warmup_steps``: linear warm-up from 0 (any schedule);
    * ``epochs``: at most this many; ``patience``: stop after this many epochs without a better val
      perplexity (0 = off); ``budget_minutes``: stop when training (validation included) has run
      this long (0 = off); the cosine schedule then anneals by time if time runs out before steps;
    * ``average``: evaluate and save an exponential moving average of the weights with this decay
      per step (0 = off, 0.999 = roughly the last thousand steps).
    """

    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0
    batch_size: int = 16
    num_steps: int = 64
    sampling: Literal["sequential", "random"] = "sequential"
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = 0.006
    momentum: float = 0.0
    weight_decay: float = 0.01
    clip: float = 1.0
    schedule: Literal["constant", "cosine", "plateau"] = "cosine"
    warmup_steps: int = 30
    min_lr: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    epochs: int = 30
    patience: int = 0
    budget_minutes: float = 0.0
    average: float = 0.0

    def __post_init__(self) -> None:
        check_integers("train", self, {"batch_size": 1, "num_steps": 1, "epochs": 1, "seed": 0,
                                       "threads": 0, "warmup_steps": 0, "patience": 0,
                                       "plateau_patience": 1})
        check_choices("train", self, {"device": DEVICES, "optimizer": OPTIMIZERS,
                                      "schedule": SCHEDULES, "sampling": SAMPLINGS})
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ParamError(f"train.lr = {self.lr} must be a number > 0")
        for key in ("momentum", "weight_decay", "clip", "min_lr", "budget_minutes"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise ParamError(f"train.{key} = {value} must be a number >= 0")
        if self.momentum >= 1:
            raise ParamError(f"train.momentum = {self.momentum} must be in [0, 1)")
        if not 0 < self.plateau_factor < 1:
            raise ParamError(f"train.plateau_factor = {self.plateau_factor} must be in (0, 1)")
        if self.min_lr > self.lr:
            raise ParamError(f"train.min_lr = {self.min_lr} must not exceed train.lr = {self.lr}")
        if not 0 <= self.average < 1:
            raise ParamError(f"train.average = {self.average} must be in [0, 1) (0 = off)")




# --- generate ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GenerateParams:
    """Sampling settings.

    * ``prefixes``: texts to continue (cleaned text: lower-case letters and spaces); ``""`` starts
      from the beginning-of-stream context alone;
    * ``length``: tokens to sample after each prefix;
    * ``temperature``: divides the log-probabilities before sampling (1 = the model as it is);
    * ``top_k``: sample among the ``k`` most likely tokens only; 0 turns it off;
    * ``seed``: seeds the numpy Generator, so samples are reproducible.
    """

    prefixes: tuple[str, ...] = ("time traveller", "the time machine")
    length: int = 200
    temperature: float = 1.0
    top_k: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.prefixes, str) or not isinstance(self.prefixes, (tuple, list)):
            raise ParamError(f"generate.prefixes = {self.prefixes!r} must be a list of strings")
        if not self.prefixes:
            raise ParamError('generate.prefixes is empty; list at least one prefix ("" is allowed)')
        for prefix in self.prefixes:
            if not isinstance(prefix, str):
                raise ParamError(f"generate.prefixes has {prefix!r}; every prefix must be a string")
        object.__setattr__(self, "prefixes", tuple(self.prefixes))
        if _not_int(self.length) or self.length < 1:
            raise ParamError(f"generate.length = {self.length!r} must be an integer >= 1")
        t = self.temperature
        if (
            isinstance(t, bool)
            or not isinstance(t, (int, float))
            or not (math.isfinite(t) and t > 0)
        ):
            raise ParamError(f"generate.temperature = {t!r} must be a number > 0")
        if _not_int(self.top_k) or self.top_k < 0:
            raise ParamError(f"generate.top_k = {self.top_k!r} must be an integer >= 0 (0 = off)")
        if _not_int(self.seed) or self.seed < 0:
            raise ParamError(f"generate.seed = {self.seed!r} must be an integer >= 0")


def _not_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


# --- ngram ---------------------------------------------------------------------------------------

SMOOTHINGS = ("kneser_ney", "laplace")
AUTO = "auto"


@dataclass(frozen=True)
class NgramParams:
    """How the n-gram baseline is fitted.

    ``order`` is an integer ``>= 1`` or ``"auto"``: the order in ``1 .. max_order`` with the lowest
    val perplexity. ``laplace_alpha`` is only read when ``smoothing`` is ``laplace``.
    """

    order: int | str = AUTO
    max_order: int = 10
    smoothing: str = "kneser_ney"
    laplace_alpha: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.order, bool) or not (
            self.order == AUTO or (isinstance(self.order, int) and self.order >= 1)
        ):
            raise ParamError(
                f"ngram.order = {self.order!r} is not allowed; use an integer >= 1 or {AUTO!r}"
            )
        if (
            isinstance(self.max_order, bool)
            or not isinstance(self.max_order, int)
            or self.max_order < 1
        ):
            raise ParamError(f"ngram.max_order = {self.max_order!r} must be an integer >= 1")
        if self.smoothing not in SMOOTHINGS:
            raise ParamError(
                f"ngram.smoothing = {self.smoothing!r} is not a smoothing; "
                f"choose one of: {', '.join(SMOOTHINGS)}"
            )
        alpha = self.laplace_alpha
        if (
            isinstance(alpha, bool)
            or not isinstance(alpha, (int, float))
            or not (math.isfinite(alpha) and alpha > 0)
        ):
            raise ParamError(f"ngram.laplace_alpha = {alpha!r} must be a number > 0")

    def orders_to_try(self) -> list[int]:
        """The orders the stage fits: ``1 .. max_order`` for ``auto``, else just ``order``."""
        return list(range(1, self.max_order + 1)) if self.order == AUTO else [int(self.order)]
