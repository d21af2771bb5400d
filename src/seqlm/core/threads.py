"""How many CPU threads a stage's torch and BLAS kernels may use.

The first of these that is set decides:

1. the ``train.threads`` param (a stage that has one), so a fixed count is part of the experiment;
2. ``SEQLM_THREADS``, an environment limit that changes no result's hash: the way to share the cores
   between runs, e.g. ``SEQLM_THREADS=1 dvc queue start -j 2`` on two cores;
3. ``OMP_NUM_THREADS``, which torch and OpenBLAS read at start-up anyway;
4. otherwise nothing is changed: torch's default, one thread per physical core.

DVC does not tell a stage how many queue workers run beside it: DVC 3's ``dvc queue start -j N``
spawns N ``dvc exp queue-worker`` processes, each running one experiment at a time, and a stage sees
only ``DVC_ROOT``, ``DVC_STAGE``, ``DVC_EXP_NAME`` and ``DVC_EXP_BASELINE_REV``. The workers do
inherit the environment of ``dvc queue start``, which is how ``SEQLM_THREADS`` reaches every
queued stage. A stage that runs in a queued (temporary-folder) experiment with no limit set logs a
warning saying so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from seqlm.core.errors import ParamError

log = logging.getLogger(__name__)

THREADS_ENV = "SEQLM_THREADS"
OMP_ENV = "OMP_NUM_THREADS"


@dataclass(frozen=True)
class ThreadLimit:
    """``count`` threads (0 = leave torch's default) and where that number came from."""

    count: int
    source: str


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


def project_root(cwd: Path) -> Path | None:
    """The nearest folder at or above ``cwd`` holding a ``.dvc`` folder (the project DVC runs)."""
    return next((d for d in (cwd, *cwd.parents) if (d / ".dvc").is_dir()), None)


def in_queued_experiment(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> bool:
    """True in an experiment DVC runs in a temporary copy of the project (``dvc queue start``,
    ``dvc exp run --temp``): ``DVC_EXP_NAME`` is set and ``DVC_ROOT`` names the original project,
    not the copy we run in."""
    env = os.environ if environ is None else environ
    root = env.get("DVC_ROOT")
    if not env.get("DVC_EXP_NAME") or not root:
        return False
    return project_root((cwd or Path.cwd()).resolve()) != Path(root).resolve()


def torch_default_threads() -> int:
    """The size of torch's intra-op thread pool as it stands."""
    import torch

    return torch.get_num_threads()


def limit_threads(requested: int = 0) -> ThreadLimit:
    """Apply :func:`resolve_threads` to torch's intra-op pool and to the BLAS libraries numpy loaded
    (threadpoolctl); with nothing set, change nothing. Returns the limit applied."""
    limit = resolve_threads(requested)
    if not limit.count:
        if in_queued_experiment():
            log.warning(
                "queued experiment with torch's default of %d threads: with `dvc queue start -j N`, "
                "set %s to the cores divided by N so the workers do not oversubscribe the CPU",
                torch_default_threads(),
                THREADS_ENV,
            )
        return limit
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(limit.count)
    threadpool_limits(limits=limit.count)
    log.info("CPU threads: %d (%s)", limit.count, limit.source)
    return limit
