"""The roofline: how close seqlm's training, scoring and dynamic evaluation run to this machine's peak.

Run by hand (not a test). For each model family at its default or recipe shape it prints

* the **GEMM peak** of this machine at the same threads: an fp32 2048³ matrix product, best of a few;
* the **FLOPs a token costs**, counted from the shapes (:func:`train_flops`; the matrix products
  only, 2 FLOPs a multiply-add, the backward pass twice the forward's);
* **training**: tokens/s of seqlm's loop (:func:`seqlm.neural.loop.train`, every regulariser on,
  the progress bar on, validation excluded: timed between two optimizer steps by the step hook)
  and of a minimal PyTorch loop over the same module built the same way (forward, loss, backward,
  clip, AdamW step — nothing else; batches sliced from one tensor made beforehand);
* **scoring** (val): tokens/s of seqlm's scorer (:func:`seqlm.neural.evaluation.target_logprobs`,
  float64 log-softmax, the convention's) and of a bare ``no_grad`` forward over the same inputs
  (the same chunks, or the same windows for the Transformer), float32 log-softmax, gathered;
* **dynamic evaluation** (val, one ``lr``/``decay`` point): tokens/s of seqlm's
  (:func:`seqlm.neural.dynamic.dynamic_logprobs`, ``rms``) and of a bare loop (forward, gather,
  ``autograd.grad``, the same RMS update written with ``torch._foreach`` ops);

each with GFLOP/s and its share of the peak, and seqlm's speed as a share of the bare one's.

The families (``--families``): ``lstm``, ``gru``, ``rnn``, ``seq2seq`` (The Time Machine defaults,
``conf/config.yaml``, with ``model=...``), ``transformer`` (``recipe=transformer`` on The Time
Machine), ``ptb_lstm`` (the ``ptb`` preset: one layer of 400 and an adaptive softmax over 10,001
words). Data: The Time Machine as the default params read it and PTB's three files, from
``$SEQLM_MIRROR`` (default ``../shared/data`` beside the repository).

Both loops of a family run in this one process, one after the other, ``--repeats`` times
alternately (the best of each kept), so a load that comes and goes on a shared machine touches
both alike. Run it on an otherwise idle machine for the absolute figures.

Usage (from the repository root)::

    python benchmarks/bench_roofline.py                        # every family, 2 threads
    python benchmarks/bench_roofline.py --families lstm ptb_lstm --steps 60
    python benchmarks/bench_roofline.py --steps 4 --warmup 1 --repeats 1   # plumbing
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ptb  # noqa: E402  (a sibling benchmark, not a package: its conf/ composition)

# family: (dataset preset, recipe, top-level overrides)
FAMILIES: dict[str, tuple[str, str | None, dict[str, Any]]] = {
    "lstm": ("timemachine", None, {}),
    "gru": ("timemachine", None, {"model": "gru"}),
    "rnn": ("timemachine", None, {"model": "rnn"}),
    "seq2seq": ("timemachine", None, {"model": "seq2seq"}),
    "transformer": ("timemachine", "transformer", {}),
    "ptb_lstm": ("ptb", None, {}),
}
GATES = {"rnn": 1, "gru": 3, "lstm": 4, "seq2seq": 4}


# --- the peak and the FLOPs a token costs --------------------------------------------------------


def gemm_peak(size: int = 2048, repeats: int = 10, warm_seconds: float = 2.0) -> float:
    """GFLOP/s of an fp32 ``size``³ matrix product at torch's current threads, best of ``repeats``
    after ``warm_seconds`` of untimed ones (measured here: 148 GFLOP/s after three products, 185
    after a few seconds of work, while the cores clock up)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    warm_until = time.perf_counter() + warm_seconds
    while time.perf_counter() < warm_until:
        torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def recurrent_flops(gates: int, inputs: int, hidden: int, layers: int) -> float:
    """Forward FLOPs a token of stacked recurrent layers costs: ``2·G·H·(I + H)`` a layer."""
    total, width = 0.0, inputs
    for _ in range(layers):
        total += 2 * gates * hidden * (width + hidden)
        width = hidden
    return total


def head_flops(net: Any, vocab: int, ids: np.ndarray | None) -> float:
    """Forward FLOPs a target costs in the output layer: ``2·H·V`` for the softmax; for the adaptive
    softmax the head (shortlist + clusters) for every target and each cluster's projection and
    softmax for the share of targets (``ids``' frequencies) that fall in it."""
    h = net.hidden_size
    if net.output != "adaptive":
        return 2.0 * h * vocab
    edges = [*net.cutoffs, vocab]
    flops = 2.0 * h * (edges[0] + len(edges) - 1)
    counts = np.bincount(ids, minlength=vocab) if ids is not None else np.ones(vocab)
    share = counts / counts.sum()
    for i, (low, high) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        width = max(int(h // net.div_value ** (i + 1)), 1)
        flops += share[low:high].sum() * 2.0 * (h * width + width * (high - low))
    return flops


def forward_flops(model: str, net: Any, vocab: int, ids: np.ndarray | None) -> float:
    """Forward FLOPs a training target costs: the body and the output layer (the embedding is a
    lookup). Seq2seq reads a source token (the encoder) for every target; the Transformer's
    attention reads ``(C + 1) / 2`` earlier positions on average under its causal mask (``C`` the
    training window), ``4·d`` FLOPs each (scores and values), and its blocks cost ``24·d²``
    (queries, keys and values, the projection, the 4-wide MLP)."""
    if model == "transformer":
        d, c = net.hidden_size, net.context
        body = net.num_layers * (24.0 * d * d + 2.0 * d * (c + 1))
    else:
        body = recurrent_flops(GATES[model], net.embedding_size, net.hidden_size, net.num_layers)
        if model == "seq2seq":
            body *= 2  # the encoder over the source window, the decoder over the target window
    return body + head_flops(net, vocab, ids)


def train_flops(model: str, net: Any, vocab: int, ids: np.ndarray | None) -> float:
    """FLOPs a training target costs: the forward pass and the backward (twice the forward's)."""
    return 3.0 * forward_flops(model, net, vocab, ids)


# --- the data and the params ---------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    name: str
    model: str
    net: Any  # NetParams
    train: Any  # TrainParams
    data: Any  # PreparedData

    @property
    def bos(self) -> int:
        return self.data.vocab.id_of("<bos>")

    @property
    def vocab_size(self) -> int:
        return len(self.data.vocab)


def family(name: str, threads: int) -> Family:
    """The family's composed params and its data (built as the data stages build them)."""
    from seqlm.params import NetParams, TrainParams, build

    dataset, recipe, overrides = FAMILIES[name]
    params = bench_ptb.merge(bench_ptb.composed(dataset, recipe), overrides)
    data = bench_ptb.preset_data(dataset, params)
    train = build(TrainParams, "train", params["train"])
    train = train.replace(threads=threads, budget_minutes=0.0, eval_every=0, patience=0)
    return Family(name, params["model"], build(NetParams, "net", params["net"]), train, data)


# --- training: seqlm's loop and the minimal one ---------------------------------------------------


def seqlm_training(fam: Family, steps: int, warmup: int) -> float:
    """Tokens/s of :func:`seqlm.neural.loop.train` between optimizer steps ``warmup`` and ``steps``
    (the step hook reads the clock; validation comes after the last step and is not timed)."""
    from seqlm.neural.loop import train

    clock: dict[int, float] = {}

    def on_step(step: int, _model: nn.Module) -> bool:
        clock[step] = time.perf_counter()
        return False

    params = fam.train.replace(max_steps=steps, epochs=10_000)
    with tempfile.TemporaryDirectory() as tmp:
        small_val = replace_ids(fam.data.splits["val"], 256)  # the end-of-run validation, short
        train(
            fam.model,
            fam.net,
            params,
            fam.data.vocab,
            fam.data.splits["train"],
            small_val,
            checkpoint_path=Path(tmp) / "model.pt",
            on_step=on_step,
        )
    tokens = targets_per_step(fam) * (steps - warmup)
    return tokens / (clock[steps] - clock[warmup])


def replace_ids(split: Any, n: int) -> Any:
    """The split cut to its first ``n`` targets (the validation after training is not timed)."""
    return replace(split, ids=split.ids[:n])


def targets_per_step(fam: Family) -> int:
    """Targets in one training batch: rows × steps (seq2seq: rows × its window)."""
    width = fam.net.window if fam.model == "seq2seq" else fam.train.num_steps
    return fam.train.batch_size * width


def minimal_batches(fam: Family) -> Callable[[int], tuple[Any, ...]]:
    """Batch ``i`` of an epoch as tensors sliced from one made beforehand: ``(x, y)`` rows that
    continue each other (recurrent LMs), independent windows (Transformer), or ``(src, tgt,
    has_src)`` window pairs (seq2seq)."""
    ids = torch.as_tensor(np.asarray(fam.data.splits["train"].ids, dtype=np.int64))
    stream = torch.cat([ids.new_tensor([fam.bos]), ids])
    b, t = fam.train.batch_size, fam.train.num_steps
    if fam.model == "seq2seq":
        w = fam.net.window
        windows = ids[: ids.numel() // w * w].view(-1, w)
        has = torch.ones(b, dtype=torch.bool)
        n = (windows.shape[0] - 1) // b
        return lambda i: (
            windows[(i % n) * b : (i % n + 1) * b],
            windows[(i % n) * b + 1 :][:b],
            has,
        )
    length = (stream.numel() - 1) // b
    xs, ys = stream[: b * length].view(b, length), stream[1 : b * length + 1].view(b, length)
    n = length // t
    return lambda i: (xs[:, (i % n) * t : (i % n + 1) * t], ys[:, (i % n) * t : (i % n + 1) * t])


def minimal_training(fam: Family, steps: int, warmup: int) -> float:
    """Tokens/s of a minimal PyTorch loop over the same module, the same regularisation (the model's
    own dropouts, run in train mode), AdamW with seqlm's decay groups, clipping — nothing else."""
    from seqlm.neural.models import build_model
    from seqlm.neural.optim import make_optimizer
    from seqlm.neural.precision import seed_everything
    from seqlm.neural.tensors import detached

    seed_everything(fam.train.seed)
    model = build_model(fam.model, fam.net, fam.vocab_size, fam.bos)
    model.train()
    optimizer = make_optimizer(model, fam.train)
    batch = minimal_batches(fam)
    state = None
    started = 0.0
    for i in range(steps):
        if i == warmup:
            started = time.perf_counter()
        if fam.model == "seq2seq":
            src, tgt, has = batch(i)
            _, loss = model(src, tgt, has, targets=tgt)
        elif fam.model == "transformer":
            x, y = batch(i)
            _, loss = model(x, targets=y)
        else:
            x, y = batch(i)
            _, loss, state = model(x, targets=y, state=state)
            state = detached(state)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), fam.train.clip)
        optimizer.step()
    return targets_per_step(fam) * (steps - warmup) / (time.perf_counter() - started)


# --- scoring: seqlm's scorer and a bare forward -----------------------------------------------------


def fresh_model(fam: Family) -> nn.Module:
    """A freshly built model (scoring speed does not depend on the weights' values)."""
    from seqlm.neural.models import build_model
    from seqlm.neural.precision import seed_everything

    seed_everything(fam.train.seed)
    return build_model(fam.model, fam.net, fam.vocab_size, fam.bos).eval()


def seqlm_scoring(fam: Family, model: nn.Module, ids: np.ndarray) -> float:
    """Tokens/s of the convention's scorer over ``ids``."""
    from seqlm.neural.evaluation import target_logprobs

    started = time.perf_counter()
    target_logprobs(model, ids, fam.bos)
    return ids.size / (time.perf_counter() - started)


def bare_scores(head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """float32 log-probabilities of the targets: the adaptive softmax's own forward, or a
    log-softmax and a gather."""
    if isinstance(head, nn.AdaptiveLogSoftmaxWithLoss):
        return head(hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)).output
    return F.log_softmax(head(hidden), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def bare_scoring(fam: Family, model: nn.Module, ids: np.ndarray, chunk: int = 4096) -> float:
    """Tokens/s of a bare ``no_grad`` forward over the inputs the scorer reads: chunks of the
    stream that carry the state (recurrent), every window (seq2seq), or the same sliding windows
    (Transformer), float32 log-probabilities gathered."""
    from seqlm.neural.models.transformer import scoring_stride

    t = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    inputs = torch.cat([t.new_tensor([fam.bos]), t[:-1]])
    started = time.perf_counter()
    if fam.model == "transformer":
        c = fam.net.context
        s = scoring_stride(c)
        n = (t.numel() - c) // s * s + c
        windows, targets = inputs[:n].unfold(0, c, s), t[:n].unfold(0, c, s)
        for i in range(0, windows.shape[0], 256):
            bare_scores(model.head, model.features(windows[i : i + 256]), targets[i : i + 256])
        scored = n
    elif fam.model == "seq2seq":
        w = fam.net.window
        n = t.numel() // w * w
        tgt = t[:n].view(-1, w)
        src = torch.cat([torch.zeros_like(tgt[:1]), tgt[:-1]])
        for i in range(0, tgt.shape[0], 256):
            logits, _ = model(src[i : i + 256], tgt[i : i + 256])
            F.log_softmax(logits, dim=-1).gather(-1, tgt[i : i + 256].unsqueeze(-1))
        scored = n
    else:
        state = None
        for i in range(0, t.numel(), chunk):
            hidden, state = model.features(inputs[i : i + chunk][None], state)
            bare_scores(model.head, hidden, t[i : i + chunk][None])
        scored = t.numel()
    return scored / (time.perf_counter() - started)


def scoring_flops(fam: Family) -> float:
    """Forward FLOPs a scored target costs: the Transformer reads each target in windows that
    overlap by half (every target's window read about twice, ``C`` positions of attention)."""
    from seqlm.neural.models.transformer import scoring_stride

    flops = forward_flops(fam.model, fam.net, fam.vocab_size, fam.data.splits["train"].ids)
    if fam.model == "transformer":
        flops *= fam.net.context / scoring_stride(fam.net.context)
    return flops


# --- dynamic evaluation: seqlm's and a bare loop ------------------------------------------------


def seqlm_dynamic(fam: Family, model: nn.Module, ids: np.ndarray, segment: int) -> float:
    """Tokens/s of seqlm's dynamic evaluation (``rms``, one learning rate and decay) over ``ids``."""
    from seqlm.neural.dynamic import dynamic_logprobs

    started = time.perf_counter()
    dynamic_logprobs(model, ids, fam.bos, lr=0.001, decay=0.01, segment=segment, update="rms")
    return ids.size / (time.perf_counter() - started)


def bare_dynamic(fam: Family, model: nn.Module, ids: np.ndarray, segment: int) -> float:
    """Tokens/s of a bare dynamic evaluation: per segment a forward that carries the state, the
    targets' float32 log-probabilities, ``autograd.grad``, the RMS step and the decay toward the
    trained weights as ``torch._foreach`` ops (the Transformer re-reads its last ``C − 1``
    inputs as seqlm's does: :meth:`stream_features`)."""
    import copy

    from seqlm.neural.tensors import detached

    adapted = copy.deepcopy(model).eval()
    reader = adapted.stream_reader()
    params = [p for p in adapted.parameters() if p.requires_grad]
    trained = [p.detach().clone() for p in params]
    mean_sq = [torch.zeros_like(p) for p in params]
    t = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    inputs = torch.cat([t.new_tensor([fam.bos]), t[:-1]])
    beta, lr, decay, state = 0.99, 0.001, 0.01, None
    started = time.perf_counter()
    for k, i in enumerate(range(0, t.numel(), segment), start=1):
        hidden, new_state = reader(inputs[i : i + segment][None], state)
        lp = bare_scores(adapted.head, hidden, t[i : i + segment][None])
        grads = torch.autograd.grad(-lp.mean(), params, materialize_grads=True)
        with torch.no_grad():
            torch._foreach_mul_(mean_sq, beta)
            torch._foreach_addcmul_(mean_sq, grads, grads, value=1 - beta)
            denom = torch._foreach_div(mean_sq, 1 - beta**k)
            torch._foreach_sqrt_(denom)
            torch._foreach_add_(denom, 1e-8)
            torch._foreach_addcdiv_(params, grads, denom, value=-lr)
            torch._foreach_lerp_(params, trained, decay)
        state = detached(new_state)
    return t.numel() / (time.perf_counter() - started)


# --- the table --------------------------------------------------------------------------------------


@dataclass
class Row:
    family: str
    what: str
    flops: float  # a token
    seqlm: float  # tokens/s
    bare: float

    def line(self, peak: float) -> str:
        g_seqlm, g_bare = self.seqlm * self.flops / 1e9, self.bare * self.flops / 1e9
        return (
            f"| {self.family} | {self.what} | {self.flops / 1e6:.2f} | {self.seqlm:,.0f} | "
            f"{g_seqlm:.1f} ({100 * g_seqlm / peak:.0f} %) | {self.bare:,.0f} | "
            f"{g_bare:.1f} ({100 * g_bare / peak:.0f} %) | **{100 * self.seqlm / self.bare:.1f} %** |"
        )


HEADER = (
    "| family | work | MFLOP a token | seqlm tokens/s | seqlm GFLOP/s (of peak) | bare tokens/s | "
    "bare GFLOP/s (of peak) | seqlm / bare |\n|---|---|---|---|---|---|---|---|"
)


def best_of(
    repeats: int, first: Callable[[], float], second: Callable[[], float]
) -> tuple[float, float]:
    """The best of ``repeats`` runs of each, run alternately."""
    a = b = 0.0
    for _ in range(repeats):
        a, b = max(a, first()), max(b, second())
    return a, b


def measure(fam: Family, args: argparse.Namespace, log: Callable[[str], None]) -> list[Row]:
    """The family's three rows: training, scoring, dynamic evaluation."""
    ids = np.asarray(fam.data.splits["train"].ids)
    rows = []
    seqlm_t, bare_t = best_of(
        args.repeats,
        lambda: seqlm_training(fam, args.steps, args.warmup),
        lambda: minimal_training(fam, args.steps, args.warmup),
    )
    rows.append(
        Row(
            fam.name,
            "training",
            train_flops(fam.model, fam.net, fam.vocab_size, ids),
            seqlm_t,
            bare_t,
        )
    )
    log(rows[-1].line(args.peak))
    model = fresh_model(fam)
    val = np.asarray(fam.data.splits["val"].ids)[: args.score_tokens]
    seqlm_s, bare_s = best_of(
        args.repeats, lambda: seqlm_scoring(fam, model, val), lambda: bare_scoring(fam, model, val)
    )
    rows.append(Row(fam.name, "scoring (val)", scoring_flops(fam), seqlm_s, bare_s))
    log(rows[-1].line(args.peak))
    if fam.model != "seq2seq":
        dyn = val[: args.dynamic_tokens]
        seg = args.segment
        seqlm_d, bare_d = best_of(
            args.repeats,
            lambda: seqlm_dynamic(fam, model, dyn, seg),
            lambda: bare_dynamic(fam, model, dyn, seg),
        )
        flops = train_flops(fam.model, fam.net, fam.vocab_size, ids)
        rows.append(
            Row(fam.name, f"dynamic evaluation (segments of {seg})", flops, seqlm_d, bare_d)
        )
        log(rows[-1].line(args.peak))
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--steps", type=int, default=60, help="training steps timed a run (default 60)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument(
        "--repeats", type=int, default=3, help="runs of each loop, best kept (default 3)"
    )
    p.add_argument(
        "--score-tokens", type=int, default=20_000, help="val tokens scored (default 20,000)"
    )
    p.add_argument(
        "--dynamic-tokens", type=int, default=4_096, help="val tokens, dynamic (default 4,096)"
    )
    p.add_argument(
        "--segment", type=int, default=64, help="dynamic evaluation's segment (default 64)"
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    random.seed(0)
    args.peak = gemm_peak()
    print(f"torch {torch.__version__}, {args.threads} threads", flush=True)
    print(f"fp32 GEMM peak before the runs: {args.peak:.1f} GFLOP/s", flush=True)
    print(HEADER, flush=True)
    rows = []
    for name in args.families:
        rows += measure(family(name, args.threads), args, lambda line: print(line, flush=True))
    after = gemm_peak()
    print(f"fp32 GEMM peak after the runs: {after:.1f} GFLOP/s", flush=True)
    peak = max(args.peak, after)
    print(f"\nThe table against the higher peak, {peak:.1f} GFLOP/s:\n\n{HEADER}")
    print("\n".join(row.line(peak) for row in rows), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
