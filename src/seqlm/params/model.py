"""The model sections' schemas: the ``model`` key, ``net``, ``train``, ``generate``."""

from __future__ import annotations

import os
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

from seqlm.core.errors import ParamError
from seqlm.core.schema import (
    Allowed,
    Count,
    Listed,
    NonNegative,
    NonNegativeInt,
    Positive,
    Section,
    choices,
)
from seqlm.params.files import read_params

Model = Literal["rnn", "gru", "lstm", "seq2seq", "transformer"]
MODELS = choices(Model)
RECURRENT_MODELS = ("rnn", "gru", "lstm")
Cell = Literal["fused", "scratch"]
CELLS = choices(Cell)
Bridge = Literal["concat", "sum"]
BRIDGES = choices(Bridge)
Positions = Literal["learned", "rotary"]
POSITIONS = choices(Positions)
DROPOUTS = ("dropout", "embedding_dropout", "input_dropout", "output_dropout", "weight_drop")
Dropout = Annotated[float, Field(ge=0, lt=1), Allowed("must be in [0, 1) (a dropout probability)")]
AUTO = "auto"
Size = Annotated[
    Count | Literal["auto"],
    Allowed(f"is not allowed; use an integer >= 1 or {AUTO!r} (sized to the corpus)"),
]


def check_model(name: object) -> str:
    """Return ``name`` if it is one of :data:`MODELS`, else raise ParamError naming it."""
    if not isinstance(name, str) or name not in MODELS:
        raise ParamError(f"model = {name!r} is not a model; choose one of: {', '.join(MODELS)}")
    return name


class NetParams(Section):
    """The ``net`` section of ``params.yaml``.

    * ``embedding_size``, ``hidden_size``, ``num_layers``: the network's shape; either size may be
      ``auto``: the train stage sizes it to the corpus and the training budget
      (:func:`seqlm.neural.sizing.auto_sizes`) and the checkpoint holds the sizes it chose;
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
      ``concat`` (concatenate, then a linear map per layer) or ``sum``;
    * ``output``: ``softmax`` (a linear map to every token's logit) or ``adaptive`` (torch's
      ``AdaptiveLogSoftmaxWithLoss``, an exact distribution that is cheaper for a large vocabulary:
      a head over the ids below ``cutoffs[0]`` and one class per cluster ``[cutoffs[i],
      cutoffs[i+1])``, the clusters' projections ``div_value`` times narrower each); the cutoffs
      must increase and be below the vocabulary size; not with ``tie_weights``;
    * ``init_range``: 0 keeps each layer's own initialisation; > 0 draws every parameter uniformly
      in ±``init_range`` (Zaremba et al. 2014: 0.1 small, 0.05 medium), the output bias included;
    * ``context``, ``heads``, ``positions``: the transformer's context length ``C`` in tokens (it
      trains on windows of ``train.num_steps`` <= ``C`` and scores with windows of ``C`` advanced by
      ``C // 2``), its attention heads per layer (``hidden_size`` divisible by ``heads``) and how it
      encodes positions: ``learned`` (a ``(C, H)`` table) or ``rotary`` (RoPE on queries and keys;
      needs an even head width ``hidden_size / heads``). The transformer's width is ``hidden_size``
      (an ``embedding_size`` other than it is projected to it); ``dropout`` drops each block's
      attention and MLP outputs before the residual adds; ``weight_drop``, ``cell``, ``window``
      and ``bridge`` are not read by it;
    * ``bias``: the transformer's linear layers, LayerNorms and output layer have biases (false:
      none anywhere, as nanoGPT's ``bias = False``; the output layer then starts uniform, not at
      the unigram frequencies); the recurrent models and seq2seq always have them (refused false).
    * ``token_shift``: each of the transformer's sublayers (attention, MLP) reads the second half
      of its normalised input's channels from the position before (zeros at a window's first):
      RWKV's token shift, a parameter-free view of the previous token that speeds up learning on
      characters; refused for the other models (they read the previous token through their state).
    """

    section: ClassVar[str] = "net"
    embedding_size: Size = 128
    hidden_size: Size = 512
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
    output: Literal["softmax", "adaptive"] = "softmax"
    cutoffs: Listed[Annotated[int, Field(ge=1)]] = (2000, 6000)
    div_value: Positive = 4.0
    init_range: NonNegative = 0.0
    context: Count = 64
    heads: Count = 8
    positions: Positions = "learned"
    bias: bool = True
    token_shift: bool = False

    @model_validator(mode="after")
    def _tied_sizes_match(self) -> Self:
        if not self.sized():
            return self  # checked once the train stage has sized it
        if self.tie_weights and self.embedding_size != self.hidden_size:
            raise ParamError(
                f"net.tie_weights = true needs net.embedding_size == net.hidden_size (the output "
                f"layer reuses the embedding matrix), got {self.embedding_size} and "
                f"{self.hidden_size}; make them equal or set tie_weights: false"
            )
        return self

    @model_validator(mode="after")
    def _adaptive_output(self) -> Self:
        cutoffs = list(self.cutoffs)
        if not cutoffs or cutoffs != sorted(set(cutoffs)):
            raise ParamError(f"net.cutoffs = {cutoffs} must be a non-empty, increasing list")
        if self.output == "adaptive" and self.tie_weights:
            raise ParamError(
                "net.tie_weights = true is not allowed with net.output = 'adaptive' (the adaptive "
                "softmax has no (V, H) output matrix to share); use output: softmax or untie"
            )
        if self.hidden_size == AUTO:
            return self  # checked once the train stage has sized it
        narrowest = int(self.hidden_size // self.div_value ** len(cutoffs))
        if self.output == "adaptive" and narrowest < 1:
            raise ParamError(
                f"net.div_value = {self.div_value} with {len(cutoffs)} cutoffs leaves the last "
                f"cluster of net.hidden_size = {self.hidden_size} a projection of width 0; lower "
                f"div_value or use fewer cutoffs"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for checkpoints and logs)."""
        return self.model_dump()

    def sized(self) -> bool:
        """Whether both sizes are numbers (not ``auto``)."""
        return AUTO not in (self.embedding_size, self.hidden_size)


def check_net_for_model(model: str, net: NetParams) -> None:
    """Refuse combinations that make no sense for ``model`` (raises ParamError)."""
    check_model(model)
    if model == "transformer":
        check_transformer_net(net)
    if not net.bias and model != "transformer":
        raise ParamError(
            f"net.bias = false is not allowed with model = {model!r}: only the transformer can "
            f"drop its biases (the recurrent layers always have them); set bias: true"
        )
    if net.token_shift and model != "transformer":
        raise ParamError(
            f"net.token_shift = true is not allowed with model = {model!r}: only the transformer "
            f"shifts channels between positions (a recurrent model reads the previous token "
            f"through its state); set token_shift: false"
        )
    if net.bidirectional and model != "seq2seq":
        raise ParamError(
            f"net.bidirectional = true is not allowed with model = {model!r}: a bidirectional "
            f"network reads the text right-to-left too, so the state that predicts a token has "
            f"already seen it; a language model must be left-to-right. Bidirectional is the "
            f"seq2seq encoder's option (model = 'seq2seq'), whose encoder reads only the previous "
            f"window"
        )


def check_transformer_net(net: NetParams) -> None:
    """Refuse a ``net`` the transformer cannot be built from (raises ParamError); the width is
    checked once it is a number (``auto`` is sized by the train stage to fit the heads)."""
    if net.hidden_size == AUTO:
        return
    if net.hidden_size % net.heads:
        raise ParamError(
            f"net.hidden_size = {net.hidden_size} is not divisible by net.heads = {net.heads}: "
            f"each attention head gets hidden_size / heads dimensions; choose heads among the "
            f"divisors of hidden_size"
        )
    if net.positions == "rotary" and (net.hidden_size // net.heads) % 2:
        raise ParamError(
            f"net.positions = 'rotary' needs an even head width, got net.hidden_size / net.heads "
            f"= {net.hidden_size} / {net.heads} = {net.hidden_size // net.heads} (rotary "
            f"positions turn pairs of dimensions); change heads or hidden_size, or use learned"
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
Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS = choices(Precision)
Optimizer = Literal["sgd", "adam", "adamw"]
OPTIMIZERS = choices(Optimizer)
Schedule = Literal["constant", "cosine", "plateau", "step"]
SCHEDULES = choices(Schedule)
Sampling = Literal["sequential", "random"]
SAMPLINGS = choices(Sampling)


class TrainParams(Section):
    """The ``train`` section of ``params.yaml``.

    * ``seed``: seeds weights, dropout masks and batch order (same params → same metrics);
    * ``device``: ``auto`` takes a GPU when there is one; ``precision``: ``fp32``, ``bf16``
      (autocast; CUDA or CPU) or ``fp16`` (autocast with loss scaling; CUDA only);
      ``processes``: training processes per node (data-parallel, launched with ``torchrun``; the
      ``batch_size`` rows divide across them); ``threads``: CPU threads per process (0 =
      ``SEQLM_THREADS``, else ``OMP_NUM_THREADS``, else a share of the cores among the seqlm runs
      on the machine: seqlm.core.threads);
    * ``batch_size`` rows of ``num_steps`` tokens per minibatch (seq2seq: windows of
      ``net.window``);
    * ``sampling``: ``sequential`` (state carried across batches) or ``random`` (textbook's two
      iterators); seq2seq always shuffles its windows;
    * ``optimizer``: ``sgd`` (with ``momentum``), ``adam``, ``adamw`` (decoupled ``weight_decay``;
      for sgd and adam it is L2); ``lr``; ``beta2``: Adam's and AdamW's second-moment decay
      (torch's 0.999; nanoGPT 0.99); ``clip``: max gradient norm (0 = off);
    * ``schedule``: ``constant``, ``cosine`` (to ``min_lr`` at the last step of ``epochs``),
      ``plateau`` (× ``plateau_factor`` when val perplexity has not improved for
      ``plateau_patience`` evaluations) or ``step`` (``lr · decay ** max(epoch − decay_after, 0)`` in
      epoch 1, 2, ...: Zaremba et al.'s halving after epoch 4); ``warmup_steps``: linear warm-up
      from 0 (any schedule);
    * ``epochs``: at most this many; ``patience``: stop after this many evaluations (epochs unless
      ``eval_every`` is set) without a better val perplexity (0 = off); ``budget_minutes``: stop
      when training (validation included) has run this long (0 = off); the cosine schedule then
      anneals by time if time runs out before steps;
    * ``average``: evaluate and save an exponential moving average of the weights with this decay
      per step (0 = off, 0.999 = roughly the last thousand steps);
    * ``max_steps``: stop after this many optimizer steps over the whole run (0 = no limit); the
      cosine schedule then ends at ``min(max_steps, epochs × batches per epoch)``;
    * ``eval_every``: validate (and keep the best checkpoint, log, save the resumable state) every
      this many optimizer steps and at the last one, epochs notwithstanding (0 = at every epoch's
      end). ``patience`` and ``plateau_patience`` count evaluations;
    * ``eval_minutes``: instead, validate every this many minutes of the training's clock (the
      budget's: validation included) and at the last step, so that runs of different speeds are
      compared at the same minutes, as ``seqlm tune``'s pruner compares trials (0 = off; not
      with ``eval_every``). The points follow the clock, so they fall at other steps from run to
      run; no update depends on them (only the plateau schedule and ``patience`` count them).
    """

    section: ClassVar[str] = "train"
    seed: NonNegativeInt = 0
    device: Device = "auto"
    precision: Precision = "fp32"
    processes: Count = 1
    threads: NonNegativeInt = 0
    batch_size: Count = 16
    num_steps: Count = 64
    sampling: Sampling = "sequential"
    optimizer: Optimizer = "adamw"
    lr: Positive = 0.006
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    beta2: Annotated[float, Field(ge=0, lt=1), Allowed("must be in [0, 1) (Adam's beta2)")] = 0.999
    weight_decay: NonNegative = 0.01
    clip: NonNegative = 1.0
    schedule: Schedule = "cosine"
    warmup_steps: NonNegativeInt = 30
    min_lr: NonNegative = 0.0
    plateau_factor: Annotated[float, Field(gt=0, lt=1)] = 0.5
    plateau_patience: Count = 1
    decay: Annotated[float, Field(gt=0, lt=1)] = 0.5
    decay_after: NonNegativeInt = 4
    epochs: Count = 30
    patience: NonNegativeInt = 0
    budget_minutes: NonNegative = 0.0
    average: Annotated[float, Field(ge=0, lt=1), Allowed("must be in [0, 1) (0 = off)")] = 0.0
    max_steps: NonNegativeInt = 0
    eval_every: NonNegativeInt = 0
    eval_minutes: NonNegative = 0.0

    @model_validator(mode="after")
    def _min_lr_below_lr(self) -> Self:
        if self.min_lr > self.lr:
            raise ParamError(f"train.min_lr = {self.min_lr} must not exceed train.lr = {self.lr}")
        return self

    @model_validator(mode="after")
    def _one_cadence(self) -> Self:
        if self.eval_every and self.eval_minutes:
            raise ParamError(
                f"train.eval_every = {self.eval_every} and train.eval_minutes = "
                f"{self.eval_minutes} both set when to validate: set one of them (the other 0)"
            )
        return self

    @property
    def evaluates_within_epochs(self) -> bool:
        """Whether evaluations follow ``eval_every`` or ``eval_minutes`` instead of the epochs."""
        return bool(self.eval_every or self.eval_minutes)


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
