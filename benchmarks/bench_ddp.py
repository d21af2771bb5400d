"""Gradient averaging across training processes: seqlm's one explicit ``all_reduce`` after
``backward`` against ``torch.nn.parallel.DistributedDataParallel`` (buckets reduced while backward
runs), on two gloo processes of this machine.

Run by hand (figures printed; the README and ``seqlm.neural.distributed`` quote them)::

    python benchmarks/bench_ddp.py                    # the default LSTM's shape, 60 timed steps

Each process trains the Time Machine default's shape (embedding 128, LSTM 512, 29 symbols) on its
half of a batch of 16 rows × 64 steps of random ids, with one thread: forward, loss, backward, the
gradient averaging, clip, AdamW step. ``explicit`` is seqlm's :meth:`seqlm.neural.distributed.World.
average_gradients` (one flat buffer, weighted by targets); ``ddp`` wraps the same module in
DistributedDataParallel (plain LSTM, no weight drop: DDP cannot follow weight drop's
``functional_call`` of the RNN). It prints steps/s and the time in the averaging for each, and the
largest difference between the two ways' weights after the timed steps.
"""

from __future__ import annotations

import argparse
import os
import socket
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, vocab: int = 29, emb: int = 128, hidden: int = 512) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.rnn = nn.LSTM(emb, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embedding(x))
        return self.head(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def average_explicit(model: nn.Module, targets: int) -> None:
    """seqlm's averaging (seqlm.neural.distributed.World.average_gradients), inlined."""
    params = [p for p in model.parameters() if p.requires_grad]
    flat = torch.cat([p.grad.reshape(-1) * targets for p in params] + [torch.tensor([targets])])
    dist.all_reduce(flat)
    total, offset = flat[-1], 0
    for p in params:
        n = p.numel()
        p.grad = (flat[offset : offset + n] / total).view_as(p)
        offset += n


def worker(rank: int, port: int, how: str, steps: int, warmup: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = Net()
    wrapped = nn.parallel.DistributedDataParallel(model) if how == "ddp" else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(1 + rank)
    sync = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            dist.barrier()
            start, sync = time.perf_counter(), 0.0
        x = torch.randint(0, 29, (8, 65), generator=gen)
        logits = wrapped(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 29), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        t = time.perf_counter()
        loss.backward()  # DDP reduces its buckets inside backward
        if how == "explicit":
            average_explicit(model, x[:, 1:].numel())
        sync += time.perf_counter() - t
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    seconds = time.perf_counter() - start
    if rank == 0:
        out[how] = {
            "steps_per_s": steps / seconds,
            "backward_and_sync_s": sync / steps,
            "weights": torch.cat([p.detach().reshape(-1) for p in model.parameters()]),
        }
    dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    with mp.Manager() as manager:
        out = manager.dict()
        for how in ("explicit", "ddp", "explicit", "ddp"):  # twice, alternating
            mp.spawn(worker, args=(free_port(), how, args.steps, args.warmup, out), nprocs=2)
            r = out[how]
            print(
                f"{how:9} {r['steps_per_s']:6.2f} steps/s, backward + averaging "
                f"{1000 * r['backward_and_sync_s']:6.1f} ms a step"
            )
        diff = (out["explicit"]["weights"] - out["ddp"]["weights"]).abs().max().item()
        print(f"largest weight difference after {args.steps + args.warmup} steps: {diff:.2e}")


if __name__ == "__main__":
    main()
