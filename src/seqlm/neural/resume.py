"""The resumable training state: saved at every evaluation, so a killed run continues where it was.

At every evaluation point that does not end training, :func:`seqlm.neural.loop.train` saves one file
atomically (``torch.save`` of plain values and tensors, read back with ``weights_only=True``): the
training state's :meth:`~seqlm.neural.records.TrainState.state_dict`, every training process's own
part gathered into ``ranks``, the best checkpoint's bytes and the caller's extras::

    {"format": 3, "fingerprint": {...what the run was trained on...},
     "model": state_dict, "updater": {optimizer, schedule {steps, epochs, base, plateau}, average
     (None when off), scaler (None without fp16's), steps, skipped},
     "rng": {"python": the batch Random at the start of the current epoch},
     "ranks": [per training process, in rank order: {"rng": {"torch", "numpy", "cuda"},
               "carried": its rows' recurrent state between batches (None at an epoch's start)}],
     "progress": {"epoch", "position" (batches done in it), "steps", "tokens", "train_seconds",
                  "elapsed"},
     "best": {...}, "history": [...records...], "checkpoint": the best checkpoint file's bytes,
     "extras": what the caller saves beside it (the train stage: its DVCLive files and step)}

Under several processes only rank 0 reads and writes the state: the ranks' own parts (their dropout
generators differ, and each carries the state of its own rows) are gathered to it when saving, and
on resuming rank 0 decides, sends every rank the common part and scatters their own.

A state is only resumed from when its fingerprint — the model name, the ``net`` and ``train``
sections, the number of training processes, the vocabulary's checksum and the sha256 of the train
and val ids — equals the run's; otherwise it is removed, the reason logged, and training starts
from the beginning.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqlm.core.atomic import atomic_path
from seqlm.core.diff import differences
from seqlm.data.corpus import SplitData
from seqlm.data.vocab import Vocab
from seqlm.neural.distributed import World
from seqlm.neural.records import TrainState
from seqlm.params import NetParams, TrainParams

log = logging.getLogger(__name__)

FORMAT = 3  # 3: the schedule saves its steps, epochs and cuts (2: torch's chained schedulers)
STATE_FILE = "state.pt"


def fingerprint(
    model_name: str,
    net: NetParams,
    params: TrainParams,
    vocab: Vocab,
    train_split: SplitData,
    val_split: SplitData,
    processes: int = 1,
) -> dict[str, Any]:
    """What a resumable state must have been trained on to be resumed from (plain values);
    ``processes``: how many training processes (torchrun's world size) share the run."""
    return {
        "format": FORMAT,
        "processes": processes,
        "model": model_name,
        "net": net.to_dict(),
        "train": params.model_dump(),
        "vocab_sha256": vocab.checksum(),
        "train_ids_sha256": _ids_sha256(train_split.ids),
        "val_ids_sha256": _ids_sha256(val_split.ids),
    }


def _ids_sha256(ids: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(ids, dtype=np.int64).tobytes()).hexdigest()


@dataclass
class Resume:
    """Where :func:`~seqlm.neural.loop.train` keeps its resumable state, and what it resumes.

    ``saved`` is the state to continue (None: start from the beginning); ``extras()`` is called
    at every save and its plain values are saved with the state (``saved["extras"]`` on resume).
    """

    folder: Path
    fingerprint: dict[str, Any]
    saved: dict[str, Any] | None = None
    extras: Callable[[], dict[str, Any]] = field(default=dict)

    @property
    def path(self) -> Path:
        return self.folder / STATE_FILE

    def save(self, payload: dict[str, Any]) -> None:
        """Write the state atomically, stamped with the fingerprint and the caller's extras."""
        payload = {"format": FORMAT, "fingerprint": self.fingerprint, **payload}
        payload["extras"] = self.extras()
        buffer = io.BytesIO()  # in memory first: the bytes do not depend on the temporary name
        torch.save(payload, buffer)
        with atomic_path(self.path) as tmp:
            tmp.write_bytes(buffer.getvalue())

    def remove(self) -> None:
        """Delete the state (training has completed), and its folder if nothing else is there."""
        self.path.unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()


def open_resume(
    folder: str | os.PathLike[str], current: dict[str, Any], main: bool = True
) -> Resume:
    """The :class:`Resume` for ``folder``: with the state saved there if its fingerprint is
    ``current``; a state that cannot be resumed from is removed, and why is logged. Not ``main``
    (a training process other than rank 0): the state is left to rank 0, which sends what is
    needed (:func:`resumed_state`)."""
    resume = Resume(Path(folder), current)
    path = resume.path
    if not main:
        return resume
    if not path.exists():
        log.info("no resumable state at %s: training from the start", path)
        return resume
    saved, reason = _read(path, current)
    if saved is not None:
        resume.saved = saved
        progress = saved["progress"]
        log.info(
            "resuming from %s: epoch %d, %d batches into it, %d optimizer steps, %d evaluations",
            path,
            progress["epoch"],
            progress["position"],
            progress["steps"],
            len(saved["history"]),
        )
        return resume
    log.warning("not resuming from %s: %s; training from the start (it is removed)", path, reason)
    path.unlink()
    return resume


def _read(path: Path, current: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The state at ``path`` if it can be resumed from under ``current``, else None and why."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: say so, never resume from it
        return None, f"it is not a readable state ({type(e).__name__}: {e})"
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        return None, f"it is not a resumable state of format {FORMAT}"
    diff = differences(saved.get("fingerprint", {}), current)
    if diff:
        return None, "it was saved under other params or data: " + "; ".join(diff)
    return saved, ""


# --- files saved beside the state --------------------------------------------------------------


def folder_files(folder: str | os.PathLike[str]) -> dict[str, bytes]:
    """Every file under ``folder``, its bytes by its path relative to ``folder``."""
    root = Path(folder)
    if not root.is_dir():
        return {}
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def restore_folder(folder: str | os.PathLike[str], files: dict[str, bytes]) -> None:
    """Make ``folder`` hold exactly ``files`` (:func:`folder_files`'s map), nothing else."""
    import shutil

    root = Path(folder)
    shutil.rmtree(root, ignore_errors=True)
    for name, data in files.items():
        with atomic_path(root / name) as tmp:
            tmp.write_bytes(data)


# --- a training run's state --------------------------------------------------------------------


def snapshot(world: World, state: TrainState, checkpoint_path: Path) -> dict[str, Any] | None:
    """What :func:`restore` needs to continue exactly from here, on rank 0 (None on the others):
    ``state``'s :meth:`~seqlm.neural.records.TrainState.state_dict` with every rank's own part
    gathered into ``"ranks"``, and the best checkpoint's bytes (None before the first)."""
    ranks = world.gather(state.rank_state_dict())
    if ranks is None:
        return None
    saved = state.state_dict()
    del saved["rank"]
    best = saved["best"]["evaluation"]
    return {**saved, "ranks": ranks, "checkpoint": checkpoint_path.read_bytes() if best else None}


def resumed_state(world: World, resume: Resume | None) -> dict[str, Any] | None:
    """The state to continue from, on every rank (None on all: start from the beginning).

    Rank 0's ``resume.saved`` decides; the other ranks get it without the checkpoint and the
    extras (rank 0 writes those back), and each rank gets its own part as ``"rank"``."""
    if resume is None:
        return None
    local = resume.saved
    common = world.from_main(lambda: _common_part(local, world.size))
    if common is None:
        return None
    own = world.scatter(lambda: local["ranks"] if local is not None else [])
    return {**(local if world.is_main and local is not None else common), "rank": own}


def _common_part(saved: dict[str, Any] | None, processes: int) -> dict[str, Any] | None:
    """What every rank needs of ``saved`` (None: nothing to resume, or saved by another number of
    processes, which is logged)."""
    if saved is None:
        return None
    if len(saved["ranks"]) != processes:
        log.warning(
            "not resuming: the state was saved by %d training processes, this run has %d; "
            "training from the start",
            len(saved["ranks"]),
            processes,
        )
        return None
    return {k: v for k, v in saved.items() if k not in ("checkpoint", "extras", "ranks")}


def restore(state: TrainState, saved: dict[str, Any], checkpoint_path: Path) -> None:
    """Continue ``state`` from :func:`resumed_state`'s state (this rank's part under ``"rank"``);
    the best checkpoint is written back where the state has it (rank 0)."""
    state.load_state_dict(saved)
    if saved.get("checkpoint") is not None:
        with atomic_path(checkpoint_path) as tmp:
            tmp.write_bytes(saved["checkpoint"])
