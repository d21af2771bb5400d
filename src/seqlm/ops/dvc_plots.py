"""The ``dvc plots`` command line, run in a DVC repository: what the plots page
(:mod:`seqlm.ops.plots`), its SVG export (:mod:`seqlm.ops.plots_svg`) and its browser check
(:mod:`seqlm.ops.plots_check`) share. It imports nothing of theirs, so none of them imports another
to reach it."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from pathlib import Path

from seqlm.core.errors import SeqlmError
from seqlm.ops.dvc_env import dvc_command, dvc_env

log = logging.getLogger("seqlm.ops.plots")  # dvc's warnings read as the plots command's


class PlotsError(SeqlmError):
    """The plots page could not be built, rendered or checked."""


def dvc_plots_command(
    options: Sequence[str],
    targets: Sequence[str] | None = None,
    revisions: Sequence[str] | None = None,
    experiment: bool = False,
) -> list[str]:
    """``dvc plots show OPTIONS [targets]`` for the workspace, or ``dvc plots diff REV ... OPTIONS
    [--experiment] [--targets ...]`` given revisions (``--targets`` last: it takes every word after
    it, so it must swallow no revision)."""
    cmd = dvc_command("plots")
    if not (revisions or experiment):
        return [*cmd, "show", *options, *(targets or [])]
    cmd += ["diff", *(revisions or []), *options, *(["--experiment"] if experiment else [])]
    return cmd + (["--targets", *targets] if targets else [])


def run_dvc(cmd: list[str], root: Path) -> subprocess.CompletedProcess[str]:
    """Run a ``dvc plots`` command line in ``root``: PlotsError if it fails; its warnings (stderr)
    logged; the finished process (``stdout``: what ``--json`` printed)."""
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=dvc_env())
    if proc.returncode != 0:
        raise PlotsError(
            f"`dvc {' '.join(cmd[3:])}` exited {proc.returncode} in {root}:\n"
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )
    for line in proc.stderr.splitlines():
        if line.strip():
            log.warning("dvc: %s", line.strip())
    return proc
