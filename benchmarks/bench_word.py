"""Benchmark: word-level training throughput on this machine's CPU (run by hand; not a test).

A synthetic word stream over a 10,001-id vocabulary (``<unk>``, ``<bos>`` and 9,999 words whose
frequencies follow Zipf's law, most frequent first as in a real vocabulary) is trained on by
seqlm's own model classes and :func:`seqlm.neural.loop.train` (SGD, lr 1, clip 5, no dropout, the
recipe of Zaremba et al. 2014's small model), with ``train.threads`` CPU threads. Each
configuration runs ``--warm-up`` untimed optimizer steps, then ``--steps`` timed ones; the figure
is the timed steps' training tokens per second (batch × num_steps per step). The configurations:

* ``a``: LSTM 2×200 (embedding 200), full softmax;
* ``b``: the same with the adaptive softmax (cutoffs 2000, 6000, div_value 4);
* ``c``: LSTM 1×400, embedding 400, tied full softmax;
* ``d``: LSTM 1×400, embedding 400, adaptive softmax.

With ``--score-tokens N`` each trained model also scores a synthetic split of ``N`` tokens under
the convention (:func:`seqlm.neural.evaluation.score`: one stream from ``<bos>``), printing the
time and the process's peak resident memory so far.

Usage (from the repository root)::

    python benchmarks/bench_word.py                          # a, b, c, d: batch 20, num_steps 20
    python benchmarks/bench_word.py --configs a b --steps 40 --repeat 3 --score-tokens 80000
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from seqlm.data.corpus import SplitData
from seqlm.data.vocab import Vocab
from seqlm.neural.evaluation import score
from seqlm.neural.loop import train
from seqlm.neural.models import NeuralLM
from seqlm.params import NetParams, TrainParams

VOCAB_SIZE = 10_001
NO_DROPOUT = {
    "dropout": 0.0,
    "embedding_dropout": 0.0,
    "input_dropout": 0.0,
    "output_dropout": 0.0,
    "weight_drop": 0.0,
}
CONFIGS = {
    "a": ("LSTM 2x200, softmax", {"embedding_size": 200, "hidden_size": 200, "num_layers": 2}),
    "b": (
        "LSTM 2x200, adaptive",
        {"embedding_size": 200, "hidden_size": 200, "num_layers": 2, "output": "adaptive"},
    ),
    "c": (
        "LSTM 1x400, tied softmax",
        {"embedding_size": 400, "hidden_size": 400, "tie_weights": True},
    ),
    "d": (
        "LSTM 1x400, adaptive",
        {"embedding_size": 400, "hidden_size": 400, "output": "adaptive"},
    ),
}


def synthetic_vocab() -> Vocab:
    """``<unk>``, ``<bos>``, then ``w2`` … ``w10000`` (their counts only label the file)."""
    tokens = ("<unk>", "<bos>", *(f"w{i}" for i in range(2, VOCAB_SIZE)))
    return Vocab(tokens, (0, 0, *range(VOCAB_SIZE - 2, 0, -1)))


def synthetic_split(name: str, size: int, seed: int) -> SplitData:
    """``size`` ids drawn by Zipf's law over the words (rank r has probability ∝ 1 / r)."""
    ranks = np.arange(1, VOCAB_SIZE - 1)
    p = 1.0 / ranks
    ids = np.random.default_rng(seed).choice(ranks + 1, size=size, p=p / p.sum())
    ids = ids.astype(np.int32)
    return SplitData(name=name, ids=ids, lines=1, characters=size, oov=0)


def time_training(
    net: NetParams, params: TrainParams, warm_up: int, steps: int, workdir: Path
) -> tuple[float, NeuralLM]:
    """Training tokens per second over ``steps`` optimizer steps after ``warm_up`` untimed ones,
    through :func:`seqlm.neural.loop.train`; also the trained model."""
    vocab = synthetic_vocab()
    tokens_per_step = params.batch_size * params.num_steps
    train_split = synthetic_split("train", tokens_per_step * (warm_up + steps + 2), 0)
    val_split = synthetic_split("val", 1000, 1)
    times: dict[int, float] = {}
    trained: list[NeuralLM] = []

    def on_step(step: int, model: torch.nn.Module) -> bool:
        times[step] = time.perf_counter()
        if step == warm_up + steps:
            trained.append(model)  # type: ignore[arg-type]
            return True
        return False

    train(
        "lstm",
        net,
        params,
        vocab,
        train_split,
        val_split,
        checkpoint_path=workdir / "model.pt",
        on_step=on_step,
    )
    seconds = times[warm_up + steps] - times[warm_up] if warm_up else times[steps] - times[1]
    timed = steps if warm_up else steps - 1
    return timed * tokens_per_step / seconds, trained[0]


def peak_rss_mib() -> float:
    """The process's peak resident memory so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_scoring(model: NeuralLM, tokens: int) -> tuple[float, float]:
    """Seconds to score a synthetic split of ``tokens`` targets, and the peak RSS after it."""
    split = synthetic_split("val", tokens, 2)
    start = time.perf_counter()
    score(model, split, 1)
    return time.perf_counter() - start, peak_rss_mib()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=sorted(CONFIGS))
    ap.add_argument("--batch-size", type=int, default=20)
    ap.add_argument("--num-steps", type=int, default=20, help="BPTT length (tokens per row)")
    ap.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    ap.add_argument("--warm-up", type=int, default=3, help="untimed optimizer steps first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration (best kept)")
    ap.add_argument("--score-tokens", type=int, default=0, help="also time scoring (0 = off)")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    params = TrainParams(
        device="cpu",
        threads=args.threads,
        batch_size=args.batch_size,
        num_steps=args.num_steps,
        optimizer="sgd",
        lr=1.0,
        weight_decay=0.0,
        clip=5.0,
        schedule="constant",
        warmup_steps=0,
        epochs=1,
    )
    print(
        f"word-level training, V = {VOCAB_SIZE:,}, batch {args.batch_size} x {args.num_steps} "
        f"tokens, {args.steps} timed steps after {args.warm_up}, {args.threads} threads, "
        f"torch {torch.__version__}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.configs:
            title, shape = CONFIGS[key]
            net = NetParams(**shape, **NO_DROPOUT)
            runs = [
                time_training(net, params, args.warm_up, args.steps, Path(tmp))
                for _ in range(args.repeat)
            ]
            rates = [rate for rate, _ in runs]
            line = f"({key}) {title:<26} {max(rates):>9,.0f} tokens/s"
            if args.repeat > 1:
                line += f"  (runs: {', '.join(f'{r:,.0f}' for r in rates)})"
            if args.score_tokens:
                seconds, rss = time_scoring(runs[-1][1], args.score_tokens)
                line += (
                    f" | scoring {args.score_tokens:,} targets: {seconds:.1f} s "
                    f"({args.score_tokens / seconds:,.0f} tokens/s), peak RSS {rss:,.0f} MiB"
                )
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
