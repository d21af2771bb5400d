"""Data-parallel training over several processes, launched by ``torchrun``.

One process per device (``train.processes`` per node; the stage starts them itself with
``torchrun --standalone``, or a multi-node ``torchrun`` starts them and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``). Backend ``gloo`` on the CPU, ``nccl`` on CUDA (one GPU per local
rank). Every rank draws the same global batches (``train.batch_size`` rows, same seed) and trains on
its own slice of rows, carrying those rows' recurrent state::

    global batch (B rows):   rows 0 .. B/N − 1 → rank 0,   rows B/N .. 2B/N − 1 → rank 1, ...

After ``backward`` the gradients are averaged explicitly with one ``all_reduce`` of one flat
buffer, each rank's gradient weighted by its number of targets (the loss is a mean over targets),
so N processes take the update one process takes on the whole batch, up to summation order. The
clipping, the optimizer step and the schedule then run on identical gradients on every rank.
(``DistributedDataParallel`` is not used: the loop drives a model through ``batch_loss``, not
``forward``, weight drop calls the RNN through ``functional_call``, and the adaptive softmax leaves
some parameters without a gradient in a batch; one explicit, deterministic collective per step
keeps the arithmetic visible. It gives up the overlap of communication with ``backward``, which
costs nothing measurable here: ``benchmarks/bench_ddp.py``, the default LSTM's shape on two gloo
processes of this 2-core machine, ran 13.25-13.60 steps/s with this averaging against 13.54-13.80
with DistributedDataParallel (two runs each), with identical weights after 65 steps.)

The weights start equal (same seed, then rank 0's are broadcast); the dropout masks are drawn per
rank (rank ``r > 0`` reseeds with ``seed + r · 1000003``), so with dropout on, N processes train a
statistically equivalent, not identical, model. Only rank 0 validates, logs, saves the checkpoint,
writes metrics and the resumable state (every rank's carried state and generators gathered into
it, each rank's handed back to it on resuming); its val score and its stop decision are broadcast,
and the budget and the step hook are agreed every step (the maximum over ranks), so all ranks stop
together.

:func:`resolve_setup` decides a run's :class:`Setup` once, before the model is built: the device,
this process's place among the training processes, the CPU threads and the precision.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import torch
import torch.distributed as dist

from seqlm.core.errors import ParamError, SeqlmError
from seqlm.core.threads import ThreadLimit, limit_threads
from seqlm.neural.models.base import Batch
from seqlm.neural.precision import Precision, resolve_device
from seqlm.params import TrainParams

T = TypeVar("T")
StepHook = Callable[[int, torch.nn.Module], bool | None]
RANK_SEED_STRIDE = 1_000_003
TORCHRUN_ENV = ("RANK", "WORLD_SIZE")
PR_SET_PDEATHSIG = 1  # prctl(2)


def under_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (it set ``RANK`` and ``WORLD_SIZE``)."""
    return all(name in os.environ for name in TORCHRUN_ENV)


def check_batch_split(batch_size: int, processes: int) -> None:
    """The global batch's rows must divide evenly across the processes (else ParamError)."""
    if batch_size % processes:
        raise ParamError(
            f"train.batch_size = {batch_size} rows do not divide across {processes} processes; "
            f"use a batch_size that is a multiple of {processes}, or another number of processes"
        )


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # where the collectives' tensors live

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def adopt(self, model: torch.nn.Module, seed: int) -> None:
        """Make every rank start from rank 0's weights, then give each rank its own dropout."""
        if not self.distributed:
            return
        with torch.no_grad():
            for tensor in model.state_dict().values():
                dist.broadcast(tensor, src=0)
        if self.rank:
            torch.manual_seed(seed + RANK_SEED_STRIDE * self.rank)

    def shard(self, batches: Iterable[Batch]) -> Iterable[Batch]:
        """This rank's rows of every global batch (the batches themselves for one process)."""
        if not self.distributed:
            return batches
        return (self._rows(batch) for batch in batches)

    def _rows(self, batch: Batch) -> Batch:
        rows = batch.arrays[0].shape[0] // self.size
        lo = self.rank * rows
        return replace(batch, arrays=tuple(a[lo : lo + rows] for a in batch.arrays))

    def gradient_sync(self) -> Callable[[torch.nn.Module, int], None] | None:
        """What the updater calls after ``backward`` (None for one process)."""
        return self.average_gradients if self.distributed else None

    def average_gradients(self, model: torch.nn.Module, targets: int) -> None:
        """Replace every rank's gradients by the target-weighted mean over the ranks.

        One flat buffer: each gradient × this rank's targets, a has-gradient flag per parameter,
        and the targets; summed over the ranks, the gradients are divided by the total targets. A
        parameter no rank gave a gradient keeps ``None`` (as the optimizer expects)."""
        params = [p for p in model.parameters() if p.requires_grad]
        parts = [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) * targets
            for p in params
        ]
        flags = [float(p.grad is not None) for p in params] + [float(targets)]
        flat = torch.cat(parts + [torch.tensor(flags, dtype=parts[0].dtype, device=self.device)])
        dist.all_reduce(flat)
        total = flat[-1]
        has = (flat[-len(params) - 1 : -1] > 0).tolist()
        offset = 0
        for p, has_grad in zip(params, has):
            n = p.numel()
            p.grad = (flat[offset : offset + n] / total).view_as(p) if has_grad else None
            offset += n

    def reduce_max(self, value: float) -> float:
        """The largest ``value`` over the ranks (itself for one process)."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def total(self, *values: float) -> tuple[float, ...]:
        """Each of ``values`` summed over the ranks (float64; themselves for one process)."""
        if not self.distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return tuple(float(v) for v in t.tolist())

    def from_main(self, compute: Callable[[], T]) -> T:
        """``compute()`` run on rank 0 only, its result sent to every rank."""
        if not self.distributed:
            return compute()
        box: list[object] = [compute() if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]  # type: ignore[return-value]

    def gather(self, value: T) -> list[T] | None:
        """Every rank's ``value`` in rank order, on rank 0 (None on the others)."""
        if not self.distributed:
            return [value]
        out: list[T] | None = [value] * self.size if self.is_main else None
        dist.gather_object(value, out, dst=0)
        return out

    def scatter(self, compute: Callable[[], Sequence[T]]) -> T:
        """This rank's item of ``compute()``, run on rank 0 only (one item per rank)."""
        if not self.distributed:
            return compute()[0]
        box: list[object] = [None]
        items = list(compute()) if self.is_main else None
        dist.scatter_object_list(box, items, src=0)
        return box[0]  # type: ignore[return-value]

    def agreed(self, on_step: StepHook | None) -> StepHook | None:
        """``on_step`` whose stop request (on any rank) stops every rank."""
        if on_step is None or not self.distributed:
            return on_step

        def hook(step: int, model: torch.nn.Module) -> bool:
            return self.reduce_max(float(bool(on_step(step, model)))) > 0

        return hook


def world_from_env() -> World:
    """The world ``torchrun`` describes in the environment (rank 0 of 1 without it)."""
    if not under_torchrun():
        return World()
    return World(
        rank=int(os.environ["RANK"]),
        size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def join(device: torch.device, batch_size: int) -> World:
    """This process's world, its process group started (gloo on CPU, nccl on CUDA) if needed.

    On CUDA each local rank takes its own GPU (``cuda:LOCAL_RANK``, made the current device)."""
    world = world_from_env()
    if not world.distributed:
        return world
    check_batch_split(batch_size, world.size)
    if device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise ParamError(
                f"local rank {world.local_rank} has no GPU of its own: this node has "
                f"{torch.cuda.device_count()}; start at most that many processes per node "
                f"(train.processes or torchrun's --nproc-per-node), or train on the CPU"
            )
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        cuda = device.type == "cuda"
        dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
    return replace(world, device=device)


@dataclass(frozen=True)
class Setup:
    """Where and how one training run computes, decided once from the ``train`` section."""

    device: torch.device  # the training device (``cuda`` is each local rank's own GPU)
    world: World  # this process's place among the training processes
    precision: Precision
    threads: ThreadLimit  # the CPU threads torch and BLAS use, and where that number came from


def resolve_setup(params: TrainParams) -> Setup:
    """The run's set-up: the device (``train.device``), the training processes (their group
    joined under torchrun; the global batch must divide across them), the CPU threads
    (``train.threads``, else SEQLM_THREADS / OMP_NUM_THREADS, else a share of the cores
    among the runs on the machine; applied here) and the precision (refused when the device
    cannot train in it)."""
    device = resolve_device(params.device)
    world = join(device, params.batch_size)
    threads = limit_threads(params.threads, share=True)
    return Setup(device, world, Precision(params.precision, device), threads)


def die_with_launcher() -> None:
    """Have the kernel kill this process when the process that started it dies (Linux only).

    torchrun starts every worker in a session of its own, so a ``kill -9`` of ``dvc repro``'s
    process group (or of torchrun itself) would leave the workers training, and writing, on their
    own; with this a killed launcher takes its workers with it, as one process would go."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    launcher = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != launcher:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGKILL)


def leave() -> None:
    """End this process's process group, if it has one (call once, at the process's end)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def torchrun_command(module: str, argv: Sequence[str], processes: int) -> list[str]:
    """The command that runs ``python -m module argv`` as ``processes`` processes on this node."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(processes),
        "-m",
        module,
        *argv,
    ]


def relaunch(module: str, argv: Sequence[str], processes: int) -> None:
    """Run ``module`` again under ``torchrun`` with ``processes`` processes and wait for them.

    Raises SeqlmError when they fail (their own messages are on stderr above it)."""
    command = torchrun_command(module, argv, processes)
    done = subprocess.run(command, check=False)
    if done.returncode:
        raise SeqlmError(
            f"the {processes} training processes under torchrun failed (exit status "
            f"{done.returncode}); their messages are above. Command: {' '.join(command)}"
        )
