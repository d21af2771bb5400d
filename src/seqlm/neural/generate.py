"""Text from a neural model: warm up on a prefix, then predict token by token (the textbook's
``predict_ch8``), greedily or by sampling with temperature and top-k, seeded.

Sampling uses the same reshaping of the next-token distribution as the n-gram baseline
(:func:`seqlm.ngram.sampling.sampling_distribution`) and a numpy ``Generator`` seeded from
``generate.seed``, so the two models' samples are produced the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from seqlm.data.clean import clean_line
from seqlm.params import GenerateParams
from seqlm.neural.models import RecurrentLM, Seq2SeqLM
from seqlm.ngram.sampling import sampling_distribution
from seqlm.data.tokens import tokenize_line
from seqlm.data.vocab import BOS, EOS, PAD, Vocab


@dataclass(frozen=True)
class Sample:
    """One continuation of a prefix."""

    prefix: str  # the prefix as the model saw it (cleaned)
    method: str  # "greedy" or "sampled (temperature T, top-k K)"
    continuation: str


def join_tokens(tokens: Sequence[str], token: str) -> str:
    """Text of a token sequence: characters glued, words with spaces."""
    return "".join(tokens) if token == "char" else " ".join(tokens)


@torch.no_grad()
def generate_ids(
    model: RecurrentLM | Seq2SeqLM,
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
    if not greedy and rng is None:
        raise ValueError("sampling needs a numpy Generator")
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        inputs = torch.tensor([[bos_id, *map(int, prefix_ids)]], device=device)  # (1, 1 + P)
        logits, state = model.stream(inputs, None)
        out: list[int] = []
        for _ in range(length):
            probs = torch.softmax(logits[0, -1].double(), dim=-1).cpu().numpy()  # (V,)
            if greedy:
                probs[list(banned_ids)] = 0.0
                nxt = int(np.argmax(probs))
            else:
                q = sampling_distribution(probs, temperature, top_k, banned_ids)
                nxt = int(rng.choice(q.size, p=q))  # type: ignore[union-attr]
            out.append(nxt)
            logits, state = model.stream(torch.tensor([[nxt]], device=device), state)
    finally:
        model.train(was_training)
    return out


def banned_ids(vocab: Vocab) -> list[int]:
    """Markers that never occur inside a stream (``<bos>``, ``<eos>``, ``<pad>``): not generated."""
    return [vocab.id_of(t) for t in (BOS, EOS, PAD) if t in vocab]


def generate_samples(
    model: RecurrentLM | Seq2SeqLM, vocab: Vocab, token: str, params: GenerateParams
) -> list[Sample]:
    """A greedy and a sampled continuation of every prefix.

    As for the n-gram's samples, each prefix gets a fresh ``default_rng(seed)``, so a prefix's
    sample does not depend on the prefixes listed before it.
    """
    bos_id = vocab.id_of(BOS)
    method = f"sampled (temperature {params.temperature:g}, top-k {params.top_k or 'off'})"
    samples = []
    for prefix in params.prefixes:
        toks = tokenize_line(clean_line(prefix), token)
        prefix_ids = [vocab.index(t) for t in toks]
        shown = join_tokens(toks, token)
        for greedy in (True, False):
            new = generate_ids(
                model, prefix_ids, params.length, bos_id, greedy=greedy,
                rng=np.random.default_rng(params.seed), temperature=params.temperature,
                top_k=params.top_k, banned_ids=banned_ids(vocab),
            )
            samples.append(
                Sample(shown, "greedy" if greedy else method, join_tokens(vocab.decode(new), token))
            )
    return samples


def samples_markdown(title: str, samples: Sequence[Sample], token: str) -> str:
    """A readable Markdown section: each prefix in bold, then its continuation."""
    sep = "" if token == "char" else " "
    lines = [f"## {title}", ""]
    for s in samples:
        joiner = sep if s.prefix else ""
        lines.append(f"- *{s.method}*: **{s.prefix}**{joiner}{s.continuation}")
    return "\n".join(lines) + "\n"
