"""A network sized to its corpus: ``net.hidden_size: auto`` and ``net.embedding_size: auto``.

A dataset preset without a recipe gets these (``conf/config.yaml``), so a corpus of its own is not
trained with a network sized for another. The rule, :func:`auto_sizes`, in one place:

1. **Candidates**: widths ``H`` of 64 to 2,048 in steps of 64 (for the transformer, those its heads
   divide into an even head width); the embedding ``E`` is ``H / 4`` rounded to 16 for an alphabet
   (The Time Machine's 128 for 512), ``H`` for a vocabulary of :data:`WORD_VOCABULARY` tokens or
   more (words and subwords: PTB's recipes embed as wide as their state), when the weights are tied,
   and for the transformer, whose embedding is its width.
2. **The data bound**: at most :data:`PARAMS_PER_TOKEN` parameters per training token. Ten is where
   The Time Machine's 157 k characters land on the 512-wide LSTM that was chosen for it on val (1.33
   M parameters; the next width, 576, would be 1.66 M); PTB's 930 k words get 384 (its recipes: 400)
   and a corpus of 55 k characters in an alphabet of 2,438 a 64-wide one.
3. **The compute bound**, with a training budget (``train.budget_minutes``) only: the network must
   read the train split :data:`PASSES` times within the budget at this machine's speed,
   :data:`MACS_PER_SECOND` multiply-adds a second per model family, measured on the 2-core CPU
   this project is measured on (the default LSTM: 15,696 tokens/s at 1.33 M multiply-adds a token,
   ``metrics/train.json``; nanoGPT's CPU configuration: 16,223 tokens/s at 0.86 M,
   ``benchmarks/bench_transformer_parity.py``). Without a budget the epochs bound the run instead.
4. The widest candidate within both bounds (the narrowest when none is).

The sizes depend on the train split's length, the vocabulary's size and the params alone, so the
same params and data give the same network everywhere. The train stage logs the sizes it chose and
why; the checkpoint holds them.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqlm.params import AUTO, NetParams

PARAMS_PER_TOKEN = 10.0
PASSES = 4.0
MACS_PER_SECOND = {"transformer": 1.4e10, "recurrent": 2.08e10}
WIDTHS = tuple(range(64, 2049, 64))
GATES = {"rnn": 1, "gru": 3, "lstm": 4, "seq2seq": 4}
WORD_VOCABULARY = (
    1000  # from this many tokens on, each one carries a word's meaning, not a letter's
)


@dataclass(frozen=True)
class Sizing:
    """The chosen sizes and the bounds they met (for the log)."""

    embedding_size: int
    hidden_size: int
    parameters: int
    macs_per_token: int
    max_parameters: float
    max_macs: float | None  # None: no budget, no compute bound

    def describe(self) -> str:
        compute = (
            f", at most {self.max_macs / 1e6:.2f} M multiply-adds a token for {PASSES:g} passes "
            "within the budget"
            if self.max_macs is not None
            else ""
        )
        return (
            f"embedding {self.embedding_size}, hidden {self.hidden_size}: "
            f"{self.parameters / 1e6:.2f} M parameters (at most {self.max_parameters / 1e6:.2f} M "
            f"for the train split){compute}; {self.macs_per_token / 1e6:.2f} M a token"
        )


def embedding_for(model: str, net: NetParams, width: int, vocab_size: int) -> int:
    """The embedding size that goes with ``width`` (a number already given is kept)."""
    if net.embedding_size != AUTO:
        return int(net.embedding_size)
    if net.tie_weights or model == "transformer" or vocab_size >= WORD_VOCABULARY:
        return width
    return max(16, round(width / 4 / 16) * 16)


def output_macs(net: NetParams, width: int, vocab_size: int) -> int:
    """Multiply-adds a token of the output layer (the adaptive softmax: its head, about)."""
    if net.output == "adaptive":
        return width * min(vocab_size, 2 * int(net.cutoffs[0]))
    return width * vocab_size


def costs(model: str, net: NetParams, width: int, emb: int, vocab_size: int) -> tuple[int, int]:
    """(parameters, multiply-adds a token of training's forward pass) of the network, about."""
    layers = net.num_layers
    if model == "transformer":
        body = layers * 12 * width * width  # attention 4 H², MLP 8 H² a block
        macs = body + layers * 2 * net.context * width + (emb * width if emb != width else 0)
    else:
        gates = GATES[model]
        body = gates * width * (emb + width) + (layers - 1) * gates * width * 2 * width
        if model == "seq2seq":
            body *= 2  # an encoder and a decoder
        macs = body
    head = 0 if net.tie_weights else width * vocab_size
    parameters = vocab_size * emb + body + head
    return parameters, macs + output_macs(net, width, vocab_size)


def fits(model: str, net: NetParams, width: int) -> bool:
    """Whether the model can take this width (the transformer: whole, even head widths)."""
    if model != "transformer":
        return True
    return width % net.heads == 0 and (net.positions != "rotary" or (width // net.heads) % 2 == 0)


def auto_sizes(
    model: str, net: NetParams, train_tokens: int, vocab_size: int, budget_minutes: float
) -> Sizing:
    """The sizes the rule gives (see the module's docstring); a size given as a number is kept."""
    max_params = PARAMS_PER_TOKEN * train_tokens
    speed = MACS_PER_SECOND["transformer" if model == "transformer" else "recurrent"]
    max_macs = speed * budget_minutes * 60 / (PASSES * train_tokens) if budget_minutes else None
    widths = [int(net.hidden_size)] if net.hidden_size != AUTO else WIDTHS
    candidates = [w for w in widths if fits(model, net, w)] or list(widths)
    chosen = None
    for width in candidates:
        emb = embedding_for(model, net, width, vocab_size)
        params, macs = costs(model, net, width, emb, vocab_size)
        within = params <= max_params and (max_macs is None or macs <= max_macs)
        if chosen is None or within:
            chosen = Sizing(emb, width, params, macs, max_params, max_macs)
        if not within:
            break
    assert chosen is not None
    return chosen


def resolve_sizes(
    model: str, net: NetParams, train_tokens: int, vocab_size: int, budget_minutes: float
) -> tuple[NetParams, Sizing | None]:
    """``net`` with ``auto`` sizes replaced by the rule's (and the sizing, for the log); ``net``
    itself and None when both sizes are numbers."""
    if net.sized():
        return net, None
    sizing = auto_sizes(model, net, train_tokens, vocab_size, budget_minutes)
    sized = net.replace(embedding_size=sizing.embedding_size, hidden_size=sizing.hidden_size)
    return sized, sizing
