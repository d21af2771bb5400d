"""Text from a neural model: warm up on a prefix, then predict token by token (the textbook's
``predict_ch8``), greedily or by sampling with temperature and top-k, seeded.

Prefixes, the choice of each next token and the text are those of every model in seqlm
(:mod:`seqlm.sampling`), with a numpy ``Generator`` seeded from ``generate.seed``, so the neural and
the n-gram samples are produced the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from seqlm.data.vocab import BOS, Vocab
from seqlm.neural.models import NeuralLM
from seqlm.params import GenerateParams
from seqlm.sampling import (
    TextFormat,
    banned_ids,
    join_tokens,
    next_id,
    read_prefix,
    separator,
)


@dataclass(frozen=True)
class Sample:
    """One continuation of a prefix."""

    prefix: str  # the prefix as the model saw it (cleaned)
    method: str  # "greedy" or "sampled (temperature T, top-k K)"
    continuation: str


@torch.no_grad()
def generate_ids(
    model: NeuralLM,
    prefix_ids: Sequence[int],
    length: int,
    bos_id: int,
    *,
    greedy: bool,
    rng: np.random.Generator | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    banned_ids: Sequence[int] = (),
) -> list[int]:
    """``length`` new token ids after ``<bos> + prefix_ids``.

    Warm-up: the prefix is read in one call (its predictions are ignored); then each new token is
    the argmax (``greedy``) or a draw from the reshaped distribution, and is fed back in.
    """
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        inputs = torch.tensor([[bos_id, *map(int, prefix_ids)]], device=device)  # (1, 1 + P)
        logits, state = model.stream(inputs, None)
        out: list[int] = []
        for _ in range(length):
            probs = torch.softmax(logits[0, -1].double(), dim=-1).cpu().numpy()  # (V,)
            nxt = next_id(
                probs,
                greedy=greedy,
                rng=rng,
                temperature=temperature,
                top_k=top_k,
                banned_ids=banned_ids,
            )
            out.append(nxt)
            logits, state = model.stream(torch.tensor([[nxt]], device=device), state)
    finally:
        model.train(was_training)
    return out


def generate_samples(
    model: NeuralLM, vocab: Vocab, fmt: TextFormat | str, params: GenerateParams
) -> list[Sample]:
    """A greedy and a sampled continuation of every prefix.

    As for the n-gram's samples, each prefix gets a fresh ``default_rng(seed)``, so a prefix's
    sample does not depend on the prefixes listed before it.
    """
    bos_id = vocab.id_of(BOS)
    method = f"sampled (temperature {params.temperature:g}, top-k {params.top_k or 'off'})"
    banned = banned_ids(vocab, fmt)
    samples = []
    for prefix in params.prefixes:
        shown = read_prefix(prefix, fmt, vocab)
        for greedy in (True, False):
            new = generate_ids(
                model,
                shown.ids.tolist(),
                params.length,
                bos_id,
                greedy=greedy,
                rng=np.random.default_rng(params.seed),
                temperature=params.temperature,
                top_k=params.top_k,
                banned_ids=banned,
            )
            samples.append(
                Sample(
                    shown.text,
                    "greedy" if greedy else method,
                    join_tokens(vocab.decode(new), fmt),
                )
            )
    return samples


def samples_markdown(title: str, samples: Sequence[Sample], fmt: TextFormat | str) -> str:
    """A readable Markdown section: each prefix in bold, then its continuation."""
    lines = [f"## {title}", ""]
    for s in samples:
        lines.append(f"- *{s.method}*: **{s.prefix}**{separator(s.prefix, fmt)}{s.continuation}")
    return "\n".join(lines) + "\n"
