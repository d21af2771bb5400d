"""Dynamic evaluation (Krause et al., 2018, "Dynamic Evaluation of Neural Sequence Models").

A recurrent LM or a transformer reads a split as one stream from ``<bos>`` (as it is scored
statically), but in short segments of ``segment`` tokens, and keeps learning as it reads. For each
segment, in this order:

1. **score** its targets with the current weights, carrying the state across segments: the
   recurrent state, or the transformer's last ``C − 1`` inputs, each target read in the window
   the static sliding-window scorer reads it in (:meth:`~seqlm.neural.models.transformer.
   TransformerLM.stream_features`), so with ``lr = 0`` the scores are the static ones;
2. **learn** from it: one step on the gradient ``g`` of the segment's mean cross-entropy, plain
   SGD ``θ ← θ − lr·g`` or RMS-normalised ``θ ← θ − lr·g / √v̂`` (:class:`Adapter`);
3. **decay** toward the trained weights θ₀: ``θ ← θ + decay·(θ₀ − θ)``.

So every target is predicted before anything is learned from it: the weights that score segment
``k`` have seen only segments ``0 .. k−1``. The model runs without dropout (eval mode), the state
is cut from the graph at each segment's end (truncated BPTT of one segment), and the adapted
weights are a copy: the model passed in is left as it was.

Krause's RMS-normalised update divides by the root mean squared gradients of a pass over the
train split; ``rms`` here divides by those of the segments already read (RMSprop over the stream,
causal like everything else), which needs nothing but the split it scores. The decay is his global
prior, the same for every weight. The learning rate and decay are chosen on val
(:func:`choose_on_val`): every pair of the grid scores the first ``tune_tokens`` targets of val
(``evaluate.dynamic_tune_tokens``; all of val when it is shorter), so the grid's cost stays bounded
however large the corpus, and the chosen pair then scores all of val and every other split.
Only a model with a stream reader (``model.stream_reader()``: the recurrent models and the
transformer) can be evaluated this way; seq2seq reads windows from a fresh encoder and has no
stream to adapt along (refused with a ParamError).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from seqlm.core.errors import ParamError
from seqlm.core.logs import progress_disabled
from seqlm.data.corpus import SplitData
from seqlm.neural.models import NeuralLM
from seqlm.neural.models.base import Reader
from seqlm.neural.models.heads import head_target_logprobs
from seqlm.neural.tensors import detached
from seqlm.perplexity import SplitScore, score_logprobs, score_split

log = logging.getLogger("seqlm.neural.dynamic")

UPDATES = ("sgd", "rms")


@dataclass(frozen=True)
class DynamicResult:
    """The chosen ``lr`` and ``decay``, each split's score and log-probabilities under them, the
    val perplexity of every grid point (``(lr, decay, perplexity)``) and the seconds it all took."""

    lr: float
    decay: float
    segment: int
    update: str
    scores: dict[str, SplitScore]
    logprobs: dict[str, np.ndarray]
    grid: list[tuple[float, float, float]]
    seconds: float


def check_dynamic(model: NeuralLM) -> Reader:
    """How ``model`` reads a stream in segments (``reader(inputs (1, n), state) → (the output
    layer's input (1, n, H), state)``: the model's :meth:`~seqlm.neural.models.base.NeuralLM.
    stream_reader`), or a ParamError if it has none and so cannot be evaluated dynamically."""
    reader = model.stream_reader()
    if reader is not None:
        return reader
    raise ParamError(
        f"dynamic evaluation needs a model that reads a split as one stream (rnn, gru, lstm, "
        f"transformer); a {type(model).__name__} has no stream to adapt along "
        "(set evaluate.dynamic: false)"
    )


class Adapter:
    """Steps 2 and 3 of a segment: the update from its gradients, then the decay toward θ₀.

    ``sgd``: ``θ ← θ − lr·g``. ``rms``: ``θ ← θ − lr·g / (√v̂ + ε)``, where ``v̂`` is the running
    mean of the squared gradients of the segments read so far (RMSprop over the stream itself:
    β = 0.99, bias-corrected, ε = 1e-8), so each weight moves by about ``lr`` whatever its gradient's
    scale."""

    BETA = 0.99
    EPS = 1e-8

    def __init__(self, params: list[torch.Tensor], update: str, lr: float, decay: float) -> None:
        if update not in UPDATES:
            raise ParamError(f"dynamic update {update!r} is not one of {', '.join(UPDATES)}")
        self.params, self.update, self.lr, self.decay = params, update, lr, decay
        self.trained = [p.detach().clone() for p in params]  # θ₀
        self.mean_sq = [torch.zeros_like(p) for p in params]
        # two scratch tensors a weight, written in place: the step allocates nothing (a fresh
        # tensor of a large embedding each time cost more than the arithmetic)
        self.scratch = [(torch.empty_like(p), torch.empty_like(p)) for p in params]
        self.steps = 0

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor | None]) -> None:
        """Learn from one segment's gradients, then decay toward the trained weights (the same
        operations, in the same order, as ``p -= lr·g / ((v / (1 − β^t)).sqrt() + ε)`` and ``p +=
        decay·(θ₀ − p)`` written plainly, so the same numbers)."""
        self.steps += 1
        correction = 1 - self.BETA**self.steps
        for p, g, p0, v, (a, b) in zip(
            self.params, grads, self.trained, self.mean_sq, self.scratch, strict=True
        ):
            if g is not None and self.update == "sgd":
                p.sub_(torch.mul(g, self.lr, out=a))  # lr·g
            elif g is not None:
                v.mul_(self.BETA).add_(torch.mul(g, 1 - self.BETA, out=a).mul_(g))  # (1 − β)·g·g
                scale = torch.div(v, correction, out=b).sqrt_().add_(self.EPS)
                p.sub_(torch.mul(g, self.lr, out=a).div_(scale))  # lr·g / scale
            if self.decay:
                p.add_(torch.sub(p0, p, out=a).mul_(self.decay))  # decay·(θ₀ − p)


def dynamic_logprobs(
    model: NeuralLM,
    ids: np.ndarray,
    bos_id: int,
    *,
    lr: float,
    decay: float,
    segment: int,
    update: str = "sgd",
    progress: str | None = None,
) -> np.ndarray:
    """``log p(x_t | <bos>, x_1 .. x_{t-1})`` of every target of ``ids`` under dynamic evaluation
    (float64, one per target), starting from ``model``'s weights, which are not changed.
    ``progress`` names a progress bar over the targets (none without it, or with
    ``SEQLM_NO_PROGRESS``)."""
    if lr < 0 or not 0.0 <= decay <= 1.0 or segment < 1:
        raise ParamError(
            f"dynamic evaluation needs lr >= 0, decay in [0, 1] and segment >= 1, "
            f"got lr={lr}, decay={decay}, segment={segment}"
        )
    check_dynamic(model)
    adapted = copy.deepcopy(model).eval()
    read = check_dynamic(adapted)
    params = [p for p in adapted.parameters() if p.requires_grad]
    adapter = Adapter(params, update, lr, decay)
    t = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=adapted.device)
    if t.ndim != 1 or t.numel() == 0:
        raise ValueError(f"need a non-empty 1-D stream of ids, got shape {tuple(t.shape)}")
    inputs = torch.cat([t.new_tensor([bos_id]), t[:-1]])  # (N,) <bos> x1 .. x_{N-1}
    out: list[torch.Tensor] = []
    state = None
    bar = progress_bar(progress, t.numel())  # a no-op when disabled
    for start in range(0, t.numel(), segment):
        x = inputs[start : start + segment].unsqueeze(0)  # (1, n)
        y = t[start : start + segment].unsqueeze(0)  # (1, n)
        with torch.enable_grad():
            hidden, new_state = read(x, state)  # (1, n, H)
            lp = head_target_logprobs(adapted.head, hidden, y)[0]  # (n,) float64
            out.append(lp.detach())  # 1. scored before anything is learned from it
            grads = torch.autograd.grad(-lp.mean(), params, allow_unused=True)
        adapter.step(grads)  # 2. learn from the segment, 3. decay toward θ₀
        state = detached(new_state)  # tensors cut from the graph, counts kept
        bar.update(y.shape[1])
    bar.close()
    return torch.cat(out).cpu().numpy().astype(np.float64)


def progress_bar(name: str | None, total: int):  # -> tqdm
    """A tqdm bar over ``total`` targets named ``name`` (with its estimate); disabled (a no-op)
    without a name or with ``SEQLM_NO_PROGRESS``."""
    from tqdm import tqdm

    off = name is None or progress_disabled()
    return tqdm(total=total, desc=name, unit="tok", unit_scale=True, leave=False, disable=off)


def tuning_prefix(ids: np.ndarray, tokens: int) -> np.ndarray:
    """The val targets the grid is scored on: the first ``tokens`` (all when 0 or more)."""
    return ids if tokens <= 0 or tokens >= np.size(ids) else ids[:tokens]


def choose_on_val(
    model: NeuralLM,
    splits: dict[str, SplitData],
    bos_id: int,
    *,
    lrs: Sequence[float],
    decays: Sequence[float],
    segment: int,
    update: str = "sgd",
    tune_tokens: int = 0,
) -> DynamicResult:
    """Every ``(lr, decay)`` of the grid scored on the first ``tune_tokens`` targets of **val**
    only (all of val when 0 or more); the best (lowest val perplexity there, the first in grid
    order on a tie) then scores all of val (unless the grid read it all) and every other split
    from the trained weights. Logs the work ahead and, after the first pair, its estimate."""
    if not lrs or not decays:
        raise ParamError("dynamic evaluation needs at least one learning rate and one decay")
    start = time.perf_counter()
    pairs = [(float(lr), float(decay)) for lr in lrs for decay in decays]
    val_split = splits["val"]
    prefix = tuning_prefix(val_split.ids, tune_tokens)
    whole = prefix.size == np.size(val_split.ids)
    later = [n for n in splits if n != "val" or not whole]  # scored by the chosen pair
    total = len(pairs) * prefix.size + sum(np.size(splits[n].ids) for n in later)
    log.info(
        "dynamic evaluation: %d lr/decay pairs on %s val tokens%s, then the chosen pair on %s: "
        "%s tokens in all",
        len(pairs),
        f"{prefix.size:,}",
        ""
        if whole
        else f" (the first of {np.size(val_split.ids):,}: evaluate.dynamic_tune_tokens)",
        " and ".join(later),
        f"{total:,}",
    )
    grid: list[tuple[float, float, float]] = []
    best: tuple[float, float, SplitScore, np.ndarray] | None = None
    for i, (lr, decay) in enumerate(pairs):
        lp = dynamic_logprobs(
            model,
            prefix,
            bos_id,
            lr=lr,
            decay=decay,
            segment=segment,
            update=update,
            progress=f"dynamic {i + 1}/{len(pairs)} (lr {lr:g}, decay {decay:g})",
        )
        # a prefix has no character count of its own: only its nll and perplexity are read
        val = score_logprobs(val_split, lp) if whole else score_split(lp, lp.size, 0)
        grid.append((lr, decay, val.perplexity))
        log.info("dynamic evaluation lr %g decay %g: val %.4f", lr, decay, val.perplexity)
        if i == 0:
            rate = prefix.size / max(time.perf_counter() - start, 1e-9)
            log.info(
                "dynamic evaluation: %s tokens/s, about %.1f min more",
                f"{rate:,.0f}",
                (total - prefix.size) / rate / 60,
            )
        if best is None or val.nll < best[2].nll:
            best = (lr, decay, val, lp)
    assert best is not None
    lr, decay, val, val_lp = best
    scores, logprobs = {"val": val}, {"val": val_lp}
    for name in later:
        logprobs[name] = dynamic_logprobs(
            model,
            splits[name].ids,
            bos_id,
            lr=lr,
            decay=decay,
            segment=segment,
            update=update,
            progress=f"dynamic {name} (lr {lr:g}, decay {decay:g})",
        )
        scores[name] = score_logprobs(splits[name], logprobs[name])
    seconds = time.perf_counter() - start
    return DynamicResult(lr, decay, segment, update, scores, logprobs, grid, seconds)
