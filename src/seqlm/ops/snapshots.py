"""What a baseline or a reproduction consists of, and how the gate compares two of them.

A :class:`Snapshot` holds the outputs' hashes per stage (from ``dvc.lock``) and the parsed metrics
files, either as committed at a git revision (:func:`snapshot_at`) or as in the working tree
(:func:`snapshot_workspace`). :func:`compare` lists every check that fails under the tolerances of
``gate.yaml`` (:class:`GateConfig`; :mod:`seqlm.ops.gate` reads it and runs the gate): data outputs
must be byte-identical, and each gated metric must stay within its tolerance of the baseline on both
sides. A revision's metrics files are read through ``dvc.api.metrics_show``, as DVC parses them.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import Field

from seqlm.core.errors import DataError
from seqlm.core.schema import Listed, NonNegative, Section

# --- the gate's configuration: gate.yaml ----------------------------------------------------------


class MetricTolerance(Section):
    """One gated metric: ``key`` (dotted) in metrics ``file``, with its tolerance ``tolerance_pct``."""

    section: ClassVar[str] = "gate.metrics"
    file: str
    key: str
    tolerance_pct: NonNegative
    better: Literal["lower", "higher"] = "lower"
    why: str = ""


class ReportedFigure(Section):
    """A figure printed beside the diff and never gated (timings, throughput)."""

    section: ClassVar[str] = "gate.reported"
    file: str
    key: str


class GateConfig(Section):
    """The contents of ``gate.yaml``."""

    section: ClassVar[str] = "gate"
    data_stages: Listed[str] = ()
    metrics: Listed[MetricTolerance] = ()
    reported: Listed[ReportedFigure] = ()
    smoke_params: dict[str, Any] = Field(default_factory=dict)


# --- snapshots: what a baseline or a reproduction consists of ---------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The outputs' hashes per stage (from ``dvc.lock``) and the parsed metrics files."""

    outs: Mapping[str, Mapping[str, str]]
    metrics: Mapping[str, Any]


def lock_outs(lock_text: str) -> dict[str, dict[str, str]]:
    """``{stage: {path: hash}}`` from the text of a ``dvc.lock``."""
    lock = yaml.safe_load(lock_text) or {}
    outs: dict[str, dict[str, str]] = {}
    for stage, entry in (lock.get("stages") or {}).items():
        outs[stage] = {
            o["path"]: str(o.get("md5") or o.get("hash") or "") for o in entry.get("outs", [])
        }
    return outs


def _git_show(root: Path, rev: str, path: str) -> str | None:
    proc = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, text=True
    )
    return proc.stdout if proc.returncode == 0 else None


def snapshot_at(root: Path, rev: str, metric_files: Sequence[str]) -> Snapshot:
    """The baseline committed at git revision ``rev``."""
    lock = _git_show(root, rev, "dvc.lock")
    if lock is None:
        raise DataError(f"no dvc.lock committed at {rev}: there is no baseline to compare with")
    return Snapshot(lock_outs(lock), metrics_at(root, rev, metric_files))


def metrics_at(root: Path, rev: str, metric_files: Sequence[str]) -> dict[str, Any]:
    """Each metrics file committed at ``rev``, parsed by ``dvc.api.metrics_show``; a file absent
    at ``rev`` is left out (the comparison reports its metrics as missing)."""
    import dvc.api

    root = Path(root).resolve()
    metrics = {}
    for f in metric_files:
        try:  # an absolute target: dvc resolves a relative one against the working directory
            metrics[f] = dvc.api.metrics_show(str(root / f), repo=str(root), rev=rev)
        except FileNotFoundError:
            continue
    return metrics


def snapshot_workspace(root: Path, metric_files: Sequence[str]) -> Snapshot:
    """What is in the working tree now (after a reproduction)."""
    lock = root / "dvc.lock"
    if not lock.is_file():
        raise DataError(f"{lock} does not exist: the pipeline has not been reproduced")
    metrics = {}
    for f in metric_files:
        if (root / f).is_file():
            metrics[f] = json.loads((root / f).read_text(encoding="utf-8"))
    return Snapshot(lock_outs(lock.read_text(encoding="utf-8")), metrics)


# --- comparison -----------------------------------------------------------------------------------


def dotted(obj: Any, key: str) -> Any:
    """``obj["a"]["b"]`` for ``key = "a.b"``; None when any part is missing."""
    for part in key.split("."):
        if not isinstance(obj, Mapping) or part not in obj:
            return None
        obj = obj[part]
    return obj


@dataclass(frozen=True)
class Regression:
    """One failed check, as printed. ``improved``: a metric got better than its tolerance allows."""

    what: str
    committed: str
    reproduced: str
    tolerance: str
    improved: bool = False
    record_with: str = "make baseline"  # how to record a new baseline when the change is intended

    @property
    def verdict(self) -> str:
        """Why the check failed, in a few words."""
        if self.improved:
            return (
                f"better than its tolerance: if the improvement is intended, record a new "
                f"baseline (`{self.record_with}`)"
            )
        if "missing" in (self.committed, self.reproduced):
            return "missing"
        return "changed" if self.tolerance == "byte-identical" else "worse than its tolerance"

    def __str__(self) -> str:
        values = (
            f"{self.what}: committed {self.committed}, reproduced {self.reproduced} "
            f"(tolerance: {self.tolerance})"
        )
        if self.improved:
            return (
                f"IMPROVED BEYOND TOLERANCE {values}: a result this much better than the "
                f"baseline is suspect (leakage, a scoring bug); if the improvement is intended, "
                f"record a new baseline with `{self.record_with}`"
            )
        return f"REGRESSION {values}"


def compare(
    baseline: Snapshot, reproduced: Snapshot, config: GateConfig, record_with: str = "make baseline"
) -> list[Regression]:
    """Every failed check of ``reproduced`` against ``baseline``; empty when the gate passes.

    ``record_with`` is the command that records a new baseline, named where a metric improved
    beyond its tolerance.
    """
    found = _compare_data(baseline, reproduced, config.data_stages)
    for m in config.metrics:
        failed = _compare_metric(baseline, reproduced, m, record_with)
        if failed is not None:
            found.append(failed)
    return found


def _compare_data(
    baseline: Snapshot, reproduced: Snapshot, data_stages: Sequence[str]
) -> list[Regression]:
    """The data stages' outputs whose hashes differ from the baseline's."""
    found: list[Regression] = []
    for stage in data_stages:
        base, new = baseline.outs.get(stage), reproduced.outs.get(stage)
        if base is None:
            found.append(
                Regression(f"data stage {stage!r}", "absent from dvc.lock", "-", "byte-identical")
            )
            continue
        for path, digest in sorted(base.items()):
            got = (new or {}).get(path)
            if got != digest:
                found.append(
                    Regression(
                        f"data output {path} (stage {stage})",
                        f"hash {digest}",
                        f"hash {got}" if got else "missing",
                        "byte-identical",
                    )
                )
    return found


def _compare_metric(
    baseline: Snapshot, reproduced: Snapshot, m: MetricTolerance, record_with: str
) -> Regression | None:
    """The failed check of one gated metric, or None when it is within its tolerance."""
    name = f"{m.file}:{m.key}"
    b = dotted(baseline.metrics.get(m.file), m.key)
    r = dotted(reproduced.metrics.get(m.file), m.key)
    limit_pct = m.tolerance_pct  # the same bound on either side
    tol = f"±{limit_pct:g}%"
    if not isinstance(b, (int, float)):
        return Regression(name, "missing", _fmt(r), tol)
    if not isinstance(r, (int, float)) or not math.isfinite(r):
        return Regression(name, _fmt(b), "missing" if r is None else _fmt(r), tol)
    change_pct = (r - b) / abs(b) * 100 if b else (math.inf if r != b else 0.0)
    worse_pct = change_pct if m.better == "lower" else -change_pct
    if abs(worse_pct) <= limit_pct + 1e-9:
        return None
    return Regression(
        name,
        _fmt(b),
        f"{_fmt(r)} ({change_pct:+.2f}%)",
        tol,
        improved=worse_pct < 0,
        record_with=record_with,
    )


def _fmt(x: Any) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def reported_table(baseline: Snapshot, reproduced: Snapshot, config: GateConfig) -> str:
    """Markdown table of the never-gated figures (timings, throughput)."""
    rows = ["| figure (not gated) | committed | reproduced |", "|---|---|---|"]
    for f in config.reported:
        b = dotted(baseline.metrics.get(f.file), f.key)
        r = dotted(reproduced.metrics.get(f.file), f.key)
        rows.append(f"| `{f.file}:{f.key}` | {_fmt(b)} | {_fmt(r)} |")
    return "\n".join(rows)
