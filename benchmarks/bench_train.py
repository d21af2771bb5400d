"""Benchmark: seqlm's training against the textbook's, on this machine (run by hand; not a test).

Both train on the same train split and are scored on the same val split under the perplexity
convention (:func:`seqlm.neural_eval.target_logprobs`). Printed for each: training tokens/s and the
training wall time (validation excluded) until val perplexity first reaches ``--target`` (6.0).

* project: :func:`seqlm.train.train` with ``params.yaml``'s ``model``/``net``/``train`` sections,
  validated after every epoch (so its time is rounded *up* to a whole epoch);
* textbook: the d2l ``train_ch8`` loop — one-hot inputs, ``nn.LSTM`` hidden 256, batch 32,
  num_steps 35, sequential partitioning with the state detached, SGD lr 1, gradient clipping 1 —
  validated every ``--textbook-eval-every`` steps.

Usage (from the repository root)::

    python benchmarks/bench_train.py                       # data built in memory from the d2l text
    python benchmarks/bench_train.py --corpus-dir data/corpus --tokens-dir data/tokens --vocab data/vocab.tsv
"""

from __future__ import annotations

import argparse
import dataclasses
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

from seqlm.batching import seq_data_iter_sequential
from seqlm.config import load_section
from seqlm.corpus import SplitData, encode_split, load_split
from seqlm.models import NetParams, load_model_name
from seqlm.neural_eval import target_logprobs
from seqlm.perplexity import score_split
from seqlm.train import EpochRecord, TrainParams, train
from seqlm.vocab import Vocab, load_vocab

DEFAULT_TEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "timemachine.txt"


def in_memory_data(text_path: Path) -> tuple[Vocab, dict[str, SplitData]]:
    """The pipeline's char-level data with default params, built in memory."""
    from seqlm.clean import CleanParams, clean_text
    from seqlm.split import split_by_line
    from seqlm.tokens import stream, tokenize_lines
    from seqlm.vocab import VocabParams, build_vocab

    lines = clean_text(text_path.read_bytes(), CleanParams())
    blocks = split_by_line(lines, 0.9, 0.05, 0.05)
    token_lines = {k: tokenize_lines(v, "char") for k, v in blocks.items()}
    vocab = build_vocab(stream(token_lines["train"], "char"), VocabParams())
    return vocab, {k: encode_split(k, v, "char", vocab) for k, v in token_lines.items()}


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

    def stream(self, inputs: torch.Tensor, state):  # the interface target_logprobs reads
        logits, state = self(inputs, state)
        return logits.transpose(0, 1), state  # (B, T, V)


def textbook_run(
    vocab: Vocab, train_split: SplitData, val_split: SplitData, target: float, max_minutes: float,
    eval_every: int, seed: int,
) -> dict[str, float]:
    """The textbook loop until val perplexity <= target or the time cap; returns its figures."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    bos = vocab.id_of("<bos>")
    net = TextbookLSTM(len(vocab))
    updater = torch.optim.SGD(net.parameters(), lr=1.0)
    stream = np.concatenate([[bos], train_split.ids]).astype(np.int64)
    train_seconds, tokens, step, reached = 0.0, 0, 0, math.nan
    best = math.inf
    while train_seconds < max_minutes * 60 and math.isnan(reached):
        state = None
        for x, y in seq_data_iter_sequential(stream, 32, 35, rng):
            t0 = time.perf_counter()
            if state is not None:
                state = tuple(s.detach() for s in state)
            logits, state = net(torch.as_tensor(x), state)
            loss = F.cross_entropy(logits.reshape(-1, len(vocab)), torch.as_tensor(y).T.reshape(-1))
            updater.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)  # d2l's grad_clipping(net, 1)
            updater.step()
            train_seconds += time.perf_counter() - t0
            tokens += y.size
            step += 1
            if step % eval_every == 0:
                lp = target_logprobs(net, val_split.ids, bos)  # type: ignore[arg-type]
                ppl = score_split(lp, val_split.characters, val_split.oov).perplexity
                best = min(best, ppl)
                print(f"  textbook step {step}: val perplexity {ppl:.3f} after {train_seconds:.0f}s", flush=True)
                if ppl <= target:
                    reached = train_seconds
                    break
            if train_seconds >= max_minutes * 60:
                break
    return {"tokens_per_second": tokens / train_seconds, "seconds_to_target": reached,
            "best_val_perplexity": best, "train_seconds": train_seconds}


def project_run(
    params_path: str, vocab: Vocab, train_split: SplitData, val_split: SplitData, target: float,
    max_minutes: float,
) -> dict[str, float]:
    """seqlm's training with params.yaml's settings, stopped once val perplexity <= target."""
    model_name = load_model_name(params_path)
    net = load_section(NetParams, "net", params_path)
    params = load_section(TrainParams, "train", params_path)
    params = dataclasses.replace(params, budget_minutes=max_minutes)
    elapsed = {"train": 0.0, "reached": math.nan}

    def on_epoch(record: EpochRecord) -> bool:
        elapsed["train"] += record.train_seconds
        print(f"  project epoch {record.epoch}: val perplexity {record.val_perplexity:.3f} "
              f"after {elapsed['train']:.0f}s", flush=True)
        if record.val_perplexity <= target:
            elapsed["reached"] = elapsed["train"]
            return True
        return False

    with tempfile.TemporaryDirectory() as tmp:
        result = train(model_name, net, params, vocab, train_split, val_split,
                       checkpoint_path=Path(tmp) / "model.pt", on_epoch=on_epoch)
    return {"tokens_per_second": result.tokens_per_second, "seconds_to_target": elapsed["reached"],
            "best_val_perplexity": result.best_val_perplexity, "train_seconds": elapsed["train"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    ap.add_argument("--corpus-dir", help="the corpus stage's folder (else data built in memory)")
    ap.add_argument("--tokens-dir", help="the tokenize stage's folder")
    ap.add_argument("--vocab", help="vocabulary TSV")
    ap.add_argument("--text", default=str(DEFAULT_TEXT), help="corpus for in-memory data (default: %(default)s)")
    ap.add_argument("--target", type=float, default=6.0, help="val perplexity to reach (default: %(default)s)")
    ap.add_argument("--project-minutes", type=float, default=10.0, help="time cap for the project")
    ap.add_argument("--textbook-minutes", type=float, default=20.0, help="time cap for the textbook loop")
    ap.add_argument("--textbook-eval-every", type=int, default=25, help="textbook validation interval (steps)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    os.environ.setdefault("SEQLM_NO_PROGRESS", "1")

    if args.corpus_dir:
        vocab = load_vocab(args.vocab)
        splits = {s: load_split(args.corpus_dir, args.tokens_dir, s, "char") for s in ("train", "val")}
    else:
        vocab, splits = in_memory_data(Path(args.text))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; train {splits['train'].ids.size} "
          f"tokens, val {splits['val'].ids.size}; target val perplexity {args.target}", flush=True)

    print("project (params.yaml):", flush=True)
    project = project_run(args.params, vocab, splits["train"], splits["val"], args.target, args.project_minutes)
    print("textbook (one-hot LSTM 256, batch 32 x 35, SGD lr 1, clip 1):", flush=True)
    textbook = textbook_run(vocab, splits["train"], splits["val"], args.target, args.textbook_minutes,
                            args.textbook_eval_every, args.seed)

    print(f"\n{'':10} {'tokens/s':>10} {'s to val ppl ' + str(args.target):>18} {'best val ppl':>13}")
    for name, r in (("project", project), ("textbook", textbook)):
        reached = f"{r['seconds_to_target']:.0f}" if not math.isnan(r["seconds_to_target"]) else (
            f">{r['train_seconds']:.0f} (not reached)")
        print(f"{name:10} {r['tokens_per_second']:>10,.0f} {reached:>18} {r['best_val_perplexity']:>13.3f}")
    if math.isnan(project["seconds_to_target"]):
        print("the project did not reach the target")
        return 1
    tb = textbook["seconds_to_target"]
    bound = tb if not math.isnan(tb) else textbook["train_seconds"]
    speedup = bound / project["seconds_to_target"]
    print(f"speed-up to val perplexity {args.target}: {'>' if math.isnan(tb) else ''}{speedup:.1f}x "
          f"({'meets' if speedup >= 4 else 'misses'} the 4x requirement)")
    return 0 if speedup >= 4 else 1


if __name__ == "__main__":
    sys.exit(main())
