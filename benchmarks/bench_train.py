"""Benchmark: seqlm's training against the textbook's, on this machine (run by hand; not a test).

Both train on the same train split and are scored on the same val split under the perplexity
convention (:func:`seqlm.neural.evaluation.score`). Printed for each: training tokens/s and the
training wall time (validation excluded) until val perplexity first reaches ``--target`` (6.0), and
the process CPU time to get there (less sensitive to other jobs on a shared machine; the project's
epoch-end validation is taken out of it by its wall time, an approximation). Both runs are validated
every 5 steps by default, so the crossing is seen within about 5k training tokens for either; a few
untimed steps of each loop come first, so neither timed run pays the process's one-time costs.

* project: :func:`seqlm.neural.loop.train` with ``params.yaml``'s ``model``/``net``/``train`` sections
  (without its wall-clock budget), validated every ``--project-eval-every`` steps;
* textbook: the d2l ``train_ch8`` loop — one-hot inputs, ``nn.LSTM`` hidden 256, batch 32,
  num_steps 35, sequential partitioning with the state detached, SGD lr 1, gradient clipping 1 —
  validated every ``--textbook-eval-every`` steps.

Usage (from the repository root)::

    python benchmarks/bench_train.py                       # data built in memory from the d2l text
    python benchmarks/bench_train.py --corpus-dir data/corpus --tokens-dir data/tokens --vocab data/vocab.tsv
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from seqlm.data.corpus import SplitData, load_split, prepare_text
from seqlm.data.vocab import Vocab, load_vocab
from seqlm.neural.batching import seq_data_iter_sequential
from seqlm.neural.evaluation import score
from seqlm.neural.loop import Evaluation, train
from seqlm.neural.models import load_model_name
from seqlm.neural.models.base import streamed_logprobs
from seqlm.params import NetParams, TokenizeParams, TrainParams, load_section

DEFAULT_TEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "timemachine.txt"


def in_memory_data(text_path: Path) -> tuple[Vocab, dict[str, SplitData]]:
    """The pipeline's char-level data with default params, built in memory."""
    data = prepare_text(text_path.read_bytes(), TokenizeParams(token="char"))
    return data.vocab, data.splits


class TextbookLSTM(nn.Module):
    """d2l's ``RNNModel`` around ``nn.LSTM``: one-hot inputs, time-major, linear output."""

    def __init__(self, vocab_size: int, hidden_size: int = 256) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.rnn = nn.LSTM(vocab_size, hidden_size)
        self.linear = nn.Linear(hidden_size, vocab_size)

    def forward(self, idx: torch.Tensor, state=None):  # idx (B, T)
        x = F.one_hot(idx.T, self.vocab_size).float()  # (T, B, V)
        y, state = self.rnn(x, state)  # (T, B, H)
        return self.linear(y), state  # (T, B, V)

    def stream(self, inputs: torch.Tensor, state):
        logits, state = self(inputs, state)
        return logits.transpose(0, 1), state  # (B, T, V)

    def split_logprobs(
        self, ids: torch.Tensor, bos_id: int, *, chunk_size: int, **_
    ) -> torch.Tensor:
        """What :func:`seqlm.neural.evaluation.score` reads: the split as one stream from <bos>."""
        return streamed_logprobs(self.stream, ids, bos_id, chunk_size)


def textbook_batches(vocab: Vocab, train_split: SplitData, rng: random.Random):
    """One epoch of the textbook's sequential minibatches (batch 32 x 35) over ``<bos>`` + train."""
    stream = np.concatenate([[vocab.id_of("<bos>")], train_split.ids]).astype(np.int64)
    return seq_data_iter_sequential(stream, 32, 35, rng)


def textbook_step(
    net: TextbookLSTM, updater: torch.optim.Optimizer, x: np.ndarray, y: np.ndarray, state
):
    """One d2l ``train_epoch_ch8`` step: state detached, SGD after clipping at 1; the new state."""
    if state is not None:
        state = tuple(s.detach() for s in state)
    logits, state = net(torch.as_tensor(x), state)
    loss = F.cross_entropy(logits.reshape(-1, net.vocab_size), torch.as_tensor(y).T.reshape(-1))
    updater.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)  # d2l's grad_clipping(net, 1)
    updater.step()
    return state


def textbook_run(
    vocab: Vocab,
    train_split: SplitData,
    val_split: SplitData,
    target: float,
    max_minutes: float,
    eval_every: int,
    seed: int,
) -> dict[str, float]:
    """The textbook loop until val perplexity <= target or the time cap; returns its figures."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    bos = vocab.id_of("<bos>")
    net = TextbookLSTM(len(vocab))
    updater = torch.optim.SGD(net.parameters(), lr=1.0)
    train_seconds = cpu_seconds = 0.0
    tokens = step = 0
    reached = reached_cpu = math.nan
    best = math.inf
    while train_seconds < max_minutes * 60 and math.isnan(reached):
        state = None
        for x, y in textbook_batches(vocab, train_split, rng):
            t0, c0 = time.perf_counter(), time.process_time()
            state = textbook_step(net, updater, x, y, state)
            train_seconds += time.perf_counter() - t0
            cpu_seconds += time.process_time() - c0
            tokens += y.size
            step += 1
            if step % eval_every == 0:
                ppl = score(net, val_split, bos)[0].perplexity  # type: ignore[arg-type]
                best = min(best, ppl)
                print(
                    f"  textbook step {step}: val perplexity {ppl:.3f} after {train_seconds:.0f}s",
                    flush=True,
                )
                if ppl <= target:
                    reached, reached_cpu = train_seconds, cpu_seconds
                    break
            if train_seconds >= max_minutes * 60:
                break
    return {
        "tokens_per_second": tokens / train_seconds,
        "seconds_to_target": reached,
        "cpu_seconds_to_target": reached_cpu,
        "best_val_perplexity": best,
        "train_seconds": train_seconds,
        "cpu_seconds": cpu_seconds,
    }


def project_config(params_path: str, threads: int = 0) -> tuple[str, NetParams, TrainParams]:
    """``model``, ``net`` and ``train`` from the params file, without ``train``'s wall-clock budget
    (it would anneal the cosine by wall time, which a busy machine skews)."""
    params = load_section(TrainParams, "train", params_path).replace(budget_minutes=0.0)
    if threads:
        params = params.replace(threads=threads)
    return load_model_name(params_path), load_section(NetParams, "net", params_path), params


def project_run(
    params_path: str,
    vocab: Vocab,
    train_split: SplitData,
    val_split: SplitData,
    target: float,
    max_minutes: float,
    threads: int = 0,
    eval_every: int = 10,
) -> dict[str, float]:
    """seqlm's training with params.yaml's settings, validated every ``eval_every`` steps (and at
    each epoch's end, as training does) until val perplexity <= target."""
    model_name, net, params = project_config(params_path, threads)
    bos = vocab.id_of("<bos>")
    clock = {
        "start": time.perf_counter(),
        "cpu_start": time.process_time(),
        "excluded": 0.0,
        "excluded_cpu": 0.0,
        "hooks_this_epoch": 0.0,
        "best": math.inf,
        "reached": math.nan,
        "reached_cpu": math.nan,
    }

    def training_time() -> tuple[float, float]:
        return (
            time.perf_counter() - clock["start"] - clock["excluded"],
            time.process_time() - clock["cpu_start"] - clock["excluded_cpu"],
        )

    def reached(ppl: float, where: str) -> bool:
        wall, cpu = training_time()
        clock["best"] = min(clock["best"], ppl)
        print(f"  project {where}: val perplexity {ppl:.3f} after {wall:.0f}s", flush=True)
        if ppl <= target:
            if math.isnan(clock["reached"]):  # the first crossing counts
                clock["reached"], clock["reached_cpu"] = wall, cpu
            return True
        return wall >= max_minutes * 60

    def on_step(step: int, model: torch.nn.Module) -> bool:
        if step % eval_every:
            return False
        t0, c0 = time.perf_counter(), time.process_time()
        ppl = score(model, val_split, bos)[0].perplexity  # type: ignore[arg-type]
        clock["excluded"] += time.perf_counter() - t0  # validation is not training time
        clock["excluded_cpu"] += time.process_time() - c0
        clock["hooks_this_epoch"] += time.perf_counter() - t0
        return reached(ppl, f"step {step}")

    def on_evaluation(record: Evaluation) -> bool:
        own_validation = record.seconds - record.train_seconds - clock["hooks_this_epoch"]
        clock["excluded"] += own_validation  # the epoch-end validation is not training time either
        clock["excluded_cpu"] += own_validation  # (approximately)
        clock["hooks_this_epoch"] = 0.0
        return reached(record.val_perplexity, f"epoch {record.epoch}")

    with tempfile.TemporaryDirectory() as tmp:
        result = train(
            model_name,
            net,
            params,
            vocab,
            train_split,
            val_split,
            checkpoint_path=Path(tmp) / "model.pt",
            on_evaluation=on_evaluation,
            on_step=on_step,
        )
    wall, cpu = training_time()
    return {
        "tokens_per_second": result.tokens_per_second,
        "seconds_to_target": clock["reached"],
        "cpu_seconds_to_target": clock["reached_cpu"],
        "best_val_perplexity": clock["best"],
        "train_seconds": wall,
        "cpu_seconds": cpu,
    }


def warm_up(
    params_path: str,
    vocab: Vocab,
    train_split: SplitData,
    val_split: SplitData,
    steps: int = 3,
    threads: int = 0,
) -> None:
    """A few untimed steps and one validation of each loop, so neither timed run pays the process's
    one-time costs (lazy imports — ``torch.use_deterministic_algorithms`` alone imports torch's
    compiler stack, about 1.5 s — allocator growth, first kernel calls)."""
    if steps <= 0:
        return
    model_name, net, params = project_config(params_path, threads)
    with tempfile.TemporaryDirectory() as tmp:
        train(
            model_name,
            net,
            params,
            vocab,
            train_split,
            val_split,
            checkpoint_path=Path(tmp) / "model.pt",
            on_step=lambda step, _: step >= steps,
        )
    net_tb = TextbookLSTM(len(vocab))
    updater = torch.optim.SGD(net_tb.parameters(), lr=1.0)
    state = None
    for _, (x, y) in zip(range(steps), textbook_batches(vocab, train_split, random.Random(0))):
        state = textbook_step(net_tb, updater, x, y, state)
    score(net_tb, val_split, vocab.id_of("<bos>"))  # type: ignore[arg-type]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    ap.add_argument("--corpus-dir", help="the corpus stage's folder (else data built in memory)")
    ap.add_argument("--tokens-dir", help="the tokenize stage's folder")
    ap.add_argument("--vocab", help="vocabulary TSV")
    ap.add_argument(
        "--text", default=str(DEFAULT_TEXT), help="corpus for in-memory data (default: %(default)s)"
    )
    ap.add_argument(
        "--target", type=float, default=6.0, help="val perplexity to reach (default: %(default)s)"
    )
    ap.add_argument("--project-minutes", type=float, default=10.0, help="time cap for the project")
    ap.add_argument(
        "--textbook-minutes", type=float, default=20.0, help="time cap for the textbook loop"
    )
    ap.add_argument(
        "--textbook-eval-every",
        type=int,
        default=5,
        help="textbook validation interval in steps (default: %(default)s)",
    )
    ap.add_argument(
        "--project-eval-every",
        type=int,
        default=5,
        help="project validation interval in steps (default: %(default)s)",
    )
    ap.add_argument(
        "--warm-up-steps",
        type=int,
        default=3,
        help="untimed steps of each loop before the timed runs (default: %(default)s)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for both runs (0: params.yaml's train.threads / torch's default); "
        "1 is steadier on a machine shared with other jobs",
    )
    return ap.parse_args(argv)


def load_data(args: argparse.Namespace) -> tuple[Vocab, dict[str, SplitData]]:
    """The vocabulary and the train and val splits: the stages' files, else built in memory."""
    if args.corpus_dir:
        vocab = load_vocab(args.vocab)
        splits = {
            s: load_split(args.corpus_dir, args.tokens_dir, s, "char") for s in ("train", "val")
        }
        return vocab, splits
    return in_memory_data(Path(args.text))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("SEQLM_NO_PROGRESS", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    vocab, splits = load_data(args)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; train {splits['train'].ids.size} "
        f"tokens, val {splits['val'].ids.size}; target val perplexity {args.target}",
        flush=True,
    )

    warm_up(args.params, vocab, splits["train"], splits["val"], args.warm_up_steps, args.threads)
    run_args = (vocab, splits["train"], splits["val"], args.target)  # what both runs share
    print("project (params.yaml):", flush=True)
    project = project_run(
        args.params, *run_args, args.project_minutes, args.threads, args.project_eval_every
    )
    print("textbook (one-hot LSTM 256, batch 32 x 35, SGD lr 1, clip 1):", flush=True)
    textbook = textbook_run(*run_args, args.textbook_minutes, args.textbook_eval_every, args.seed)
    return compare(project, textbook, args.target)


def compare(project: dict[str, float], textbook: dict[str, float], target: float) -> int:
    """Print the two runs side by side and the speed-up; 0 when it meets the 4x requirement."""
    print(
        f"\n{'':10} {'tokens/s':>10} {'wall s to ' + str(target):>16} "
        f"{'CPU s to ' + str(target):>16} {'best val ppl':>13}"
    )
    for name, r in (("project", project), ("textbook", textbook)):
        wall, cpu = r["seconds_to_target"], r["cpu_seconds_to_target"]
        wall_s = f"{wall:.0f}" if not math.isnan(wall) else f">{r['train_seconds']:.0f}"
        cpu_s = f"{cpu:.0f}" if not math.isnan(cpu) else f">{r['cpu_seconds']:.0f}"
        print(
            f"{name:10} {r['tokens_per_second']:>10,.0f} {wall_s:>16} {cpu_s:>16} "
            f"{r['best_val_perplexity']:>13.3f}"
        )
    if math.isnan(project["seconds_to_target"]):
        print("the project did not reach the target")
        return 1
    tb = textbook["seconds_to_target"]
    bound = tb if not math.isnan(tb) else textbook["train_seconds"]
    speedup = bound / project["seconds_to_target"]
    tb_cpu = textbook["cpu_seconds_to_target"]
    cpu_bound = tb_cpu if not math.isnan(tb_cpu) else textbook["cpu_seconds"]
    cpu_speedup = cpu_bound / project["cpu_seconds_to_target"]
    more = ">" if math.isnan(tb) else ""
    print(
        f"speed-up to val perplexity {target}: {more}{speedup:.1f}x wall time, "
        f"{more}{cpu_speedup:.1f}x CPU time ({'meets' if speedup >= 4 else 'misses'} the 4x "
        f"requirement)"
    )
    return 0 if speedup >= 4 else 1


if __name__ == "__main__":
    sys.exit(main())
