"""What the ngram stage gives: the order search's rows, the scores, the samples
(:func:`seqlm.ngram.baseline.run_baseline`, :func:`seqlm.ngram.baseline_sharded.run_sharded`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqlm.data.vocab import Vocab
from seqlm.ngram.dynamic import DynamicResult
from seqlm.ngram.model import NgramModel
from seqlm.ngram.sampling import generate
from seqlm.params import GenerateParams
from seqlm.perplexity import SplitScore
from seqlm.sampling import TextFormat, banned_ids, join_tokens, read_prefix, separator


@dataclass(frozen=True)
class OrderScore:
    """One row of the order search (``metrics/ngram_orders.csv``)."""

    order: int
    val_perplexity: float
    val_bits_per_char: float


@dataclass
class BaselineResult:
    """Everything the stage writes."""

    model: NgramModel
    orders: list[OrderScore]
    scores: dict[str, SplitScore]
    logprobs: dict[str, np.ndarray]
    fit_seconds: float
    score_seconds: float
    samples: str = ""
    dynamic: DynamicResult | None = None
    sharded: dict[str, int] | None = None  # shards and depth (seqlm.ngram.baseline_sharded)

    def metrics(self) -> dict[str, object]:
        """``metrics/ngram.json``."""
        dynamic = {} if self.dynamic is None else {"dynamic": self.dynamic.record()}
        dynamic |= {} if self.sharded is None else {"sharded": dict(self.sharded)}
        return {
            "order": self.model.order,
            "smoothing": self.model.smoothing,
            "vocab_size": self.model.vocab_size,
            "ngrams": self.model.table_rows(),
            "fit_seconds": round(self.fit_seconds, 4),
            "score_seconds": round(self.score_seconds, 4),
            **{split: s.to_record() for split, s in self.scores.items()},
            **dynamic,
        }


def sample_texts(
    model: NgramModel, vocab: Vocab, fmt: TextFormat | str, gen: GenerateParams
) -> str:
    """One sample per prefix, each from a fresh ``default_rng(seed)``: prefixes are independent.

    Each prefix is read like the corpus (:func:`seqlm.sampling.read_prefix`: cleaned, tokenized) and
    shown cleaned, as the model saw it, under a header naming it as written in the params."""
    blocks = []
    banned = banned_ids(vocab, fmt)
    for prefix in gen.prefixes:
        shown = read_prefix(prefix, fmt, vocab)
        rng = np.random.default_rng(gen.seed)
        new = generate(model, shown.ids, gen.length, rng, gen.temperature, gen.top_k, banned)
        text = shown.text + separator(shown.text, fmt) + join_tokens(vocab.decode(new), fmt)
        blocks.append(f"== prefix: {prefix!r} ==\n{text}\n")
    header = (
        f"# {model.order}-gram {model.smoothing}; length {gen.length}, temperature "
        f"{gen.temperature}, top_k {gen.top_k}, seed {gen.seed}\n\n"
    )
    return header + "\n".join(blocks)
