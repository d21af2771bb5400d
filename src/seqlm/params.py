"""Typed parameters: one frozen pydantic model per ``params.yaml`` section, all of them here.

Every section is a :class:`~seqlm.core.schema.Section`: strict types (a string is not a number, a
bool is not an integer; an integer where a float is expected becomes a float; a YAML list becomes a
tuple), no unknown keys, frozen. ``load_section`` reads one section of the file; building a section
directly (``TrainParams(epochs=2)``) runs the same checks. A refusal is a ParamError naming the key,
the bad value and what is allowed, so a typo in ``params.yaml`` (or in ``dvc exp run -S``) fails
loudly instead of being ignored.
"""

from __future__ import annotations

import os
import typing
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

import yaml
from pydantic import Field, field_validator, model_validator

from seqlm.core.errors import ParamError
from seqlm.core.schema import Allowed, Count, Listed, NonNegative, NonNegativeInt, Positive, Section
from seqlm.data.split import check_fractions

S = TypeVar("S", bound=Section)

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


def build(cls: type[S], section: str, values: Mapping[str, Any]) -> S:
    """Validate ``values``, params section ``section``, into ``cls`` (which names its keys)."""
    if not isinstance(values, Mapping):
        raise ParamError(f"params section {section!r} must be a mapping, got {values!r}")
    return cls(**{str(key): value for key, value in values.items()})


def load_section(cls: type[S], section: str, path: str | os.PathLike[str] = DEFAULT_PARAMS) -> S:
    """Read section ``section`` of the params file into ``cls``."""
    params = read_params(path)
    if section not in params:
        raise ParamError(f"params file {str(path)!r} has no section {section!r}")
    return build(cls, section, params[section] or {})


def choices(literal: Any) -> tuple[str, ...]:
    """The values of a ``Literal`` type, in order."""
    return typing.get_args(literal)


# --- data sections ------------------------------------------------------------------------------

SCHEMES = ("http", "https", "file")
TokenKind = Literal["word", "char"]
TOKEN_KINDS = choices(TokenKind)
RESERVED_CHOICES = ("<pad>", "<bos>", "<eos>")
"""Tokens ``vocab.reserved`` may place after ``<unk>`` (always index 0)."""


class DownloadParams(Section):
    """The ``download`` section: the corpus URL and its sha1, checked on every fetch."""

    section: ClassVar[str] = "download"
    url: str
    sha1: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{40}$"), Allowed("is not a 40-digit hex sha1")]
    timeout_s: Positive = 30.0
    retries: NonNegativeInt = 3

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        scheme = urllib.parse.urlparse(url).scheme
        if scheme not in SCHEMES:
            raise ParamError(
                f"download.url = {url!r} has scheme {scheme!r}; allowed: {', '.join(SCHEMES)}"
            )
        return url


class CleanParams(Section):
    """The ``clean`` section."""

    section: ClassVar[str] = "clean"
    strip_gutenberg: bool = False


class TokenizeParams(Section):
    """The ``tokenize`` section: the token kind and the split fractions (they sum to 1)."""

    section: ClassVar[str] = "tokenize"
    token: Annotated[
        TokenKind, Allowed(f"is not a tokenization; choose one of: {', '.join(TOKEN_KINDS)}")
    ] = "char"
    train_fraction: float = 0.90
    val_fraction: float = 0.05
    test_fraction: float = 0.05

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> Self:
        check_fractions(self.train_fraction, self.val_fraction, self.test_fraction)
        return self


class VocabParams(Section):
    """The ``vocab`` section: tokens seen fewer than ``min_freq`` times become ``<unk>``."""

    section: ClassVar[str] = "vocab"
    min_freq: Annotated[int, Field(ge=1), Allowed("must be >= 1")] = 1
    reserved: Listed[str] = ("<bos>",)

    @field_validator("reserved")
    @classmethod
    def _known_reserved(cls, reserved: tuple[str, ...]) -> tuple[str, ...]:
        for tok in reserved:
            if tok not in RESERVED_CHOICES:
                raise ParamError(
                    f"vocab.reserved has {tok!r}; allowed: {', '.join(RESERVED_CHOICES)} "
                    f"(<unk> is always index 0)"
                )
        if len(set(reserved)) != len(reserved):
            raise ParamError(f"vocab.reserved = {list(reserved)} lists a token twice")
        return reserved


# --- model and net ------------------------------------------------------------------------------

Model = Literal["rnn", "gru", "lstm", "seq2seq"]
MODELS = choices(Model)
RECURRENT_MODELS = ("rnn", "gru", "lstm")
Cell = Literal["fused", "scratch"]
CELLS = choices(Cell)
Bridge = Literal["concat", "sum"]
BRIDGES = choices(Bridge)
DROPOUTS = ("dropout", "embedding_dropout", "input_dropout", "output_dropout", "weight_drop")
Dropout = Annotated[float, Field(ge=0, lt=1), Allowed("must be in [0, 1) (a dropout probability)")]


def check_model(name: object) -> str:
    """Return ``name`` if it is one of :data:`MODELS`, else raise ParamError naming it."""
    if not isinstance(name, str) or name not in MODELS:
        raise ParamError(f"model = {name!r} is not a model; choose one of: {', '.join(MODELS)}")
    return name


class NetParams(Section):
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

    section: ClassVar[str] = "net"
    embedding_size: Count = 128
    hidden_size: Count = 512
    num_layers: Count = 1
    dropout: Dropout = 0.0
    embedding_dropout: Dropout = 0.05
    input_dropout: Dropout = 0.1
    output_dropout: Dropout = 0.3
    weight_drop: Dropout = 0.25
    locked: bool = True
    tie_weights: bool = False
    cell: Cell = "fused"
    bidirectional: bool = False
    window: Count = 64
    bridge: Bridge = "concat"

    @model_validator(mode="after")
    def _tied_sizes_match(self) -> Self:
        if self.tie_weights and self.embedding_size != self.hidden_size:
            raise ParamError(
                f"net.tie_weights = true needs net.embedding_size == net.hidden_size (the output "
                f"layer reuses the embedding matrix), got {self.embedding_size} and "
                f"{self.hidden_size}; make them equal or set tie_weights: false"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for checkpoints and logs)."""
        return self.model_dump()


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

Device = Literal["auto", "cpu", "cuda"]
DEVICES = choices(Device)
Optimizer = Literal["sgd", "adam", "adamw"]
OPTIMIZERS = choices(Optimizer)
Schedule = Literal["constant", "cosine", "plateau"]
SCHEDULES = choices(Schedule)
Sampling = Literal["sequential", "random"]
SAMPLINGS = choices(Sampling)


class TrainParams(Section):
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

    section: ClassVar[str] = "train"
    seed: NonNegativeInt = 0
    device: Device = "auto"
    threads: NonNegativeInt = 0
    batch_size: Count = 16
    num_steps: Count = 64
    sampling: Sampling = "sequential"
    optimizer: Optimizer = "adamw"
    lr: Positive = 0.006
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    weight_decay: NonNegative = 0.01
    clip: NonNegative = 1.0
    schedule: Schedule = "cosine"
    warmup_steps: NonNegativeInt = 30
    min_lr: NonNegative = 0.0
    plateau_factor: Annotated[float, Field(gt=0, lt=1)] = 0.5
    plateau_patience: Count = 1
    epochs: Count = 30
    patience: NonNegativeInt = 0
    budget_minutes: NonNegative = 0.0
    average: Annotated[float, Field(ge=0, lt=1), Allowed("must be in [0, 1) (0 = off)")] = 0.0

    @model_validator(mode="after")
    def _min_lr_below_lr(self) -> Self:
        if self.min_lr > self.lr:
            raise ParamError(f"train.min_lr = {self.min_lr} must not exceed train.lr = {self.lr}")
        return self


# --- generate ------------------------------------------------------------------------------------


class GenerateParams(Section):
    """Sampling settings.

    * ``prefixes``: texts to continue (cleaned text: lower-case letters and spaces); ``""`` starts
      from the beginning-of-stream context alone;
    * ``length``: tokens to sample after each prefix;
    * ``temperature``: divides the log-probabilities before sampling (1 = the model as it is);
    * ``top_k``: sample among the ``k`` most likely tokens only; 0 turns it off;
    * ``seed``: seeds the numpy Generator, so samples are reproducible.
    """

    section: ClassVar[str] = "generate"
    prefixes: Listed[str] = ("time traveller", "the time machine")
    length: Count = 200
    temperature: Positive = 1.0
    top_k: Annotated[int, Field(ge=0), Allowed("must be an integer >= 0 (0 = off)")] = 0
    seed: NonNegativeInt = 0

    @field_validator("prefixes")
    @classmethod
    def _some_prefix(cls, prefixes: tuple[str, ...]) -> tuple[str, ...]:
        if not prefixes:
            raise ParamError('generate.prefixes is empty; list at least one prefix ("" is allowed)')
        return prefixes


# --- ngram ---------------------------------------------------------------------------------------

Smoothing = Literal["kneser_ney", "laplace"]
SMOOTHINGS = choices(Smoothing)
AUTO = "auto"


class NgramParams(Section):
    """How the n-gram baseline is fitted.

    ``order`` is an integer ``>= 1`` or ``"auto"``: the order in ``1 .. max_order`` with the lowest
    val perplexity. ``laplace_alpha`` is only read when ``smoothing`` is ``laplace``.
    """

    section: ClassVar[str] = "ngram"
    order: Annotated[
        Count | Literal["auto"], Allowed(f"is not allowed; use an integer >= 1 or {AUTO!r}")
    ] = AUTO
    max_order: Count = 10
    smoothing: Annotated[
        Smoothing, Allowed(f"is not a smoothing; choose one of: {', '.join(SMOOTHINGS)}")
    ] = "kneser_ney"
    laplace_alpha: Positive = 1.0

    def orders_to_try(self) -> list[int]:
        """The orders the stage fits: ``1 .. max_order`` for ``auto``, else just ``order``."""
        return list(range(1, self.max_order + 1)) if self.order == AUTO else [int(self.order)]
