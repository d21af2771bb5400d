"""How many CPU threads a stage's torch and BLAS kernels may use.

The first of these that is set decides:

1. the ``train.threads`` param (a stage that has one), so a fixed count is part of the experiment;
2. ``SEQLM_THREADS``, an environment limit that changes no result's hash: the way to share the cores
   between runs, e.g. ``SEQLM_THREADS=1 dvc queue start -j 2`` on two cores;
3. ``OMP_NUM_THREADS``, which torch and OpenBLAS read at start-up anyway;
4. otherwise the stages that train and evaluate **share the cores** with the others running on the
   machine (:class:`CoreShare`); anything else keeps torch's default, one thread per physical core.

Sharing: each such stage writes a file named by its process id in a folder every seqlm run on the
machine sees (``SEQLM_CORES_DIR``, default ``seqlm-cores-<uid>`` in the temporary folder) and takes
``max(1, cores // runs)`` threads, ``cores`` being torch's default and ``runs`` the live processes
registered there (a file whose process is gone is removed). A training looks again every
:data:`REFRESH_SECONDS` between steps and resizes torch's and the BLAS's pools when the count has
changed, so a run started alone gives up cores when a second starts and takes them back when it
ends. Alone, a run keeps torch's default: the same threads, the same numbers as without sharing.
Oversubscribed cores are what collapses side-by-side trainings: OpenMP's workers spin waiting for
each other and two 2-thread trainings on 2 cores together made less than half the progress of one.
``SEQLM_SHARE_CORES=0`` turns sharing off (torch's default, whatever runs beside).

DVC does not tell a stage how many queue workers run beside it: DVC 3's ``dvc queue start -j N``
spawns N ``dvc exp queue-worker`` processes, each running one experiment at a time, and a stage sees
only ``DVC_ROOT``, ``DVC_STAGE``, ``DVC_EXP_NAME`` and ``DVC_EXP_BASELINE_REV``; the shared folder
counts them instead. ``SEQLM_THREADS`` set for ``dvc queue start`` still fixes every worker's count.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from seqlm.core.errors import ParamError

log = logging.getLogger(__name__)

THREADS_ENV = "SEQLM_THREADS"
OMP_ENV = "OMP_NUM_THREADS"
CORES_DIR_ENV = "SEQLM_CORES_DIR"
SHARE_ENV = "SEQLM_SHARE_CORES"
REFRESH_SECONDS = 2.0


@dataclass(frozen=True)
class ThreadLimit:
    """``count`` threads (0 = leave torch's default) and where that number came from; ``share``
    when the count is this process's share of the cores (``source`` "shared")."""

    count: int
    source: str
    share: CoreShare | None = field(default=None, compare=False, repr=False)

    def refresh(self) -> None:
        """Resize to the current share of the cores, if this is one (a training's steps call it)."""
        if self.share is not None:
            self.share.refresh()

    def release(self) -> None:
        """Give the share back (the work is done), if this is one."""
        if self.share is not None:
            self.share.close()


def env_count(name: str, environ: Mapping[str, str]) -> int | None:
    """The positive integer in ``environ[name]``; None when unset or empty; else a ParamError."""
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ParamError(
            f"{name}={raw!r} is not a thread count: set a whole number >= 1, or unset it"
        )
    return value


def resolve_threads(requested: int, environ: Mapping[str, str] | None = None) -> ThreadLimit:
    """The thread count a stage uses: ``requested`` (``train.threads``) if positive, else the
    environment's limit (``SEQLM_THREADS``, then ``OMP_NUM_THREADS``), else 0 (torch's default)."""
    if requested < 0:
        raise ParamError(f"a thread count must be >= 0 (0 = torch's default), got {requested}")
    if requested:
        return ThreadLimit(requested, "train.threads")
    env = os.environ if environ is None else environ
    for name in (THREADS_ENV, OMP_ENV):
        value = env_count(name, env)
        if value is not None:
            return ThreadLimit(value, name)
    return ThreadLimit(0, "default")


def torch_default_threads() -> int:
    """The size of torch's intra-op thread pool as it stands."""
    import torch

    return torch.get_num_threads()


@functools.cache
def machine_cores() -> int:
    """Torch's default pool size (one thread per physical core), read the first time this is
    called in the process: call it before any pool is resized (:func:`limit_threads` does)."""
    return torch_default_threads()


def set_threads(count: int) -> None:
    """Resize torch's intra-op pool and the BLAS libraries' pools (threadpoolctl) to ``count``."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(count)
    threadpool_limits(limits=count)


def cores_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder where the runs sharing the cores register (``SEQLM_CORES_DIR``, else
    ``seqlm-cores-<uid>`` in the temporary folder)."""
    env = os.environ if environ is None else environ
    named = env.get(CORES_DIR_ENV, "").strip()
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(named) if named else Path(tempfile.gettempdir()) / f"seqlm-cores-{uid}"


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (signal 0 checks, sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def share_of(cores: int, runs: int) -> int:
    """A run's threads when ``runs`` share ``cores``: ``max(1, cores // runs)``."""
    return max(1, cores // max(runs, 1))


class CoreShare:
    """This process's registration among the runs sharing the machine's cores (module docstring).

    ``threads`` is its current share; :meth:`refresh` (cheap: it looks at the folder at most every
    ``every`` seconds) recounts the live runs and resizes the pools when the share has changed;
    :meth:`close` (also at exit) unregisters."""

    def __init__(
        self,
        folder: Path,
        cores: int,
        *,
        pid: int | None = None,
        every: float = REFRESH_SECONDS,
        apply: Callable[[int], None] = set_threads,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder, self.cores, self.every = folder, cores, every
        self.pid = os.getpid() if pid is None else pid
        self.apply, self.clock = apply, clock
        folder.mkdir(parents=True, exist_ok=True)
        self.entry = folder / str(self.pid)
        self.entry.touch()
        atexit.register(self.close)
        self.threads = 0
        self.checked = -float("inf")
        self.refresh(force=True)

    def runs(self) -> int:
        """The live processes registered (this one included); stale entries are removed."""
        live = 0
        for entry in self.folder.iterdir():
            if not entry.name.isdigit():
                continue
            if int(entry.name) == self.pid or process_alive(int(entry.name)):
                live += 1
            else:
                entry.unlink(missing_ok=True)
        return max(live, 1)

    def refresh(self, force: bool = False) -> int:
        """Recount the runs (if ``every`` seconds have passed, or ``force``) and apply the share
        when it changed; returns the share."""
        now = self.clock()
        if not force and now - self.checked < self.every:
            return self.threads
        self.checked = now
        runs = self.runs()
        share = share_of(self.cores, runs)
        if share != self.threads:
            self.apply(share)
            log.info(
                "CPU threads: %d (shared: %d run%s on %d cores)",
                share,
                runs,
                "" if runs == 1 else "s",
                self.cores,
            )
            self.threads = share
        return share

    def close(self) -> None:
        """Unregister (idempotent)."""
        self.entry.unlink(missing_ok=True)


def sharing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """False when ``SEQLM_SHARE_CORES`` is ``0`` (or ``false``, ``no``, ``off``)."""
    env = os.environ if environ is None else environ
    return env.get(SHARE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def limit_threads(requested: int = 0, share: bool = False) -> ThreadLimit:
    """Apply :func:`resolve_threads` to torch's intra-op pool and to the BLAS libraries numpy loaded
    (threadpoolctl). With nothing set: with ``share`` (the stages that train and evaluate) this
    process's share of the cores (:class:`CoreShare`), else nothing changed. Returns the limit."""
    cores = machine_cores()  # before any resize
    limit = resolve_threads(requested)
    if not limit.count:
        if not share or not sharing_enabled():
            return limit
        shared = CoreShare(cores_dir(), cores)
        return ThreadLimit(shared.threads, "shared", shared)
    set_threads(limit.count)
    log.info("CPU threads: %d (%s)", limit.count, limit.source)
    return limit
