"""The reproduction gate: rerun the pipeline from a clean state and compare it with the committed baseline.

``dvc metrics diff`` shows differences but never fails; this gate does. It

1. reads the baseline committed at a git revision (``HEAD`` by default): ``dvc.lock`` and the metrics
   files;
2. reproduces the pipeline from a clean state (``dvc repro --force``: every stage runs, nothing is
   restored from the run cache);
3. fails on any regression:

   * the outputs of the data stages must be byte-identical (their hashes in ``dvc.lock``);
   * each gated metric may not get worse by more than its tolerance (``gate.yaml``, versioned);

4. prints ``dvc metrics diff --md`` and ``dvc params diff --md`` against the baseline, and the timings
   and throughputs beside them — reported, never gated, since they vary from machine to machine.

The smoke mode runs the same gate on a small configuration in a throw-away copy of the project, whose
committed state is the smoke baseline kept in ``gate/smoke/``. ``--update`` records a new baseline on
purpose (see the README, "Scheduled reproduction").

Run it as ``python -m seqlm.ops.gate [--smoke] [--update] [--summary FILE]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seqlm.params import build
from seqlm.core.errors import DataError, ParamError, SeqlmError

log = logging.getLogger(__name__)

GATE_FILE = "gate.yaml"
SMOKE_DIR = Path("gate") / "smoke"


# --- configuration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricTolerance:
    """One gated metric: ``key`` (dotted) in metrics ``file`` may not worsen by more than ``max_worse_pct``."""

    file: str
    key: str
    max_worse_pct: float
    better: str = "lower"
    why: str = ""

    def __post_init__(self) -> None:
        if self.better not in ("lower", "higher"):
            raise ParamError(f"gate metric {self.key}: better = {self.better!r}; allowed: lower, higher")
        if not self.max_worse_pct >= 0:
            raise ParamError(f"gate metric {self.key}: max_worse_pct = {self.max_worse_pct} must be >= 0")


@dataclass(frozen=True)
class ReportedFigure:
    """A figure printed beside the diff and never gated (timings, throughput)."""

    file: str
    key: str


@dataclass(frozen=True)
class GateConfig:
    """The contents of ``gate.yaml``."""

    data_stages: tuple[str, ...]
    metrics: tuple[MetricTolerance, ...]
    reported: tuple[ReportedFigure, ...] = ()
    smoke_params: Mapping[str, Any] = field(default_factory=dict)


def load_config(path: str | os.PathLike[str]) -> GateConfig:
    """Read ``gate.yaml``; unknown or mistyped keys are errors naming the key."""
    p = Path(path)
    if not p.is_file():
        raise ParamError(f"gate configuration {str(p)!r} does not exist")
    raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    allowed = {"data_stages", "metrics", "reported", "smoke_params"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ParamError(f"unknown key(s) in {p}: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return GateConfig(
        data_stages=tuple(raw.get("data_stages", ())),
        metrics=tuple(build(MetricTolerance, "gate.metrics", m) for m in raw.get("metrics", ())),
        reported=tuple(build(ReportedFigure, "gate.reported", r) for r in raw.get("reported", ())),
        smoke_params=raw.get("smoke_params") or {},
    )


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
        outs[stage] = {o["path"]: str(o.get("md5") or o.get("hash") or "") for o in entry.get("outs", [])}
    return outs


def _git_show(root: Path, rev: str, path: str) -> str | None:
    proc = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def snapshot_at(root: Path, rev: str, metric_files: Sequence[str]) -> Snapshot:
    """The baseline committed at git revision ``rev``."""
    lock = _git_show(root, rev, "dvc.lock")
    if lock is None:
        raise DataError(f"no dvc.lock committed at {rev}: there is no baseline to compare with")
    metrics = {}
    for f in metric_files:
        text = _git_show(root, rev, f)
        if text is not None:
            metrics[f] = json.loads(text)
    return Snapshot(lock_outs(lock), metrics)


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
    """One failed check, as printed."""

    what: str
    committed: str
    reproduced: str
    tolerance: str

    def __str__(self) -> str:
        return (f"REGRESSION {self.what}: committed {self.committed}, reproduced {self.reproduced} "
                f"(tolerance: {self.tolerance})")


def compare(baseline: Snapshot, reproduced: Snapshot, config: GateConfig) -> list[Regression]:
    """Every regression of ``reproduced`` against ``baseline``; empty when the gate passes."""
    found: list[Regression] = []
    for stage in config.data_stages:
        base, new = baseline.outs.get(stage), reproduced.outs.get(stage)
        if base is None:
            found.append(Regression(f"data stage {stage!r}", "absent from dvc.lock", "-", "byte-identical"))
            continue
        for path, digest in sorted(base.items()):
            got = (new or {}).get(path)
            if got != digest:
                found.append(Regression(f"data output {path} (stage {stage})", f"hash {digest}",
                                        f"hash {got}" if got else "missing", "byte-identical"))
    for m in config.metrics:
        name = f"{m.file}:{m.key}"
        b = dotted(baseline.metrics.get(m.file), m.key)
        r = dotted(reproduced.metrics.get(m.file), m.key)
        tol = f"{'+' if m.better == 'lower' else '-'}{m.max_worse_pct:g}%"
        if not isinstance(b, (int, float)):
            found.append(Regression(name, "missing", _fmt(r), tol))
            continue
        if not isinstance(r, (int, float)) or not math.isfinite(r):
            found.append(Regression(name, _fmt(b), "missing" if r is None else _fmt(r), tol))
            continue
        change_pct = (r - b) / abs(b) * 100 if b else (math.inf if r != b else 0.0)
        worse_pct = change_pct if m.better == "lower" else -change_pct
        if worse_pct > m.max_worse_pct + 1e-9:
            found.append(Regression(name, _fmt(b), f"{_fmt(r)} ({change_pct:+.2f}%)", tol))
    return found


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


# --- running --------------------------------------------------------------------------------------


def _run(cmd: Sequence[str], root: Path, capture: bool = False) -> str:
    log.info("$ %s", " ".join(cmd))
    proc = subprocess.run(cmd, cwd=root, text=True, capture_output=capture)
    if proc.returncode != 0:
        detail = f"\n{proc.stdout}\n{proc.stderr}" if capture else ""
        raise SeqlmError(f"`{' '.join(cmd)}` failed with exit code {proc.returncode}{detail}")
    return proc.stdout if capture else ""


def metric_files(config: GateConfig) -> list[str]:
    return sorted({m.file for m in config.metrics} | {r.file for r in config.reported})


def run_gate(root: Path, config: GateConfig, rev: str = "HEAD", reproduce: bool = True) -> tuple[list[Regression], str]:
    """Reproduce (unless told not to) and compare with the baseline at ``rev``; returns the regressions
    and the Markdown report."""
    files = metric_files(config)
    baseline = snapshot_at(root, rev, files)
    if reproduce:
        _run(["dvc", "repro", "--force"], root)
    reproduced = snapshot_workspace(root, files)
    regressions = compare(baseline, reproduced, config)
    metrics_md = _run(["dvc", "metrics", "diff", "--md", "--all", rev], root, capture=True)
    params_md = _run(["dvc", "params", "diff", "--md", rev], root, capture=True)
    verdict = ("**Gate failed**: " + f"{len(regressions)} regression(s)") if regressions else "**Gate passed**"
    parts = [f"## Reproduction gate against `{rev}`", "", verdict, ""]
    if regressions:
        parts += ["| check | committed | reproduced | tolerance |", "|---|---|---|---|"]
        parts += [f"| {r.what} | {r.committed} | {r.reproduced} | {r.tolerance} |" for r in regressions]
        parts.append("")
    parts += ["### dvc metrics diff", "", metrics_md.strip() or "(no metric changed)", "",
              "### dvc params diff", "", params_md.strip() or "(no param changed)", "",
              "### Timings and throughput", "", reported_table(baseline, reproduced, config), ""]
    return regressions, "\n".join(parts)


def tracked_files(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=True)
    return [f for f in out.stdout.split("\0") if f]


def smoke_params(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with the dotted ``overrides`` of the smoke configuration applied."""
    out = json.loads(json.dumps(params))  # deep copy of plain data
    for dotted_key, value in overrides.items():
        *parents, leaf = dotted_key.split(".")
        node = out
        for p in parents:
            if not isinstance(node.get(p), dict):
                raise ParamError(f"gate.yaml smoke_params: {dotted_key!r} names no params section")
            node = node[p]
        if leaf not in node:
            raise ParamError(f"gate.yaml smoke_params: {dotted_key!r} is not a key of params.yaml")
        node[leaf] = value
    return out


def prepare_smoke_project(root: Path, workdir: Path, config: GateConfig) -> Path:
    """A copy of the project's tracked files whose committed state is the smoke baseline."""
    project = workdir / "project"
    for rel in tracked_files(root):
        src = root / rel
        if src.is_file():
            (project / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, project / rel)
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    (project / "params.yaml").write_text(yaml.safe_dump(smoke_params(params, config.smoke_params), sort_keys=False))
    smoke = root / SMOKE_DIR
    for f in ["dvc.lock", *metric_files(config)]:
        target = project / f
        target.unlink(missing_ok=True)
        if (smoke / f).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(smoke / f, target)
    env_git = ["-c", "user.name=seqlm gate", "-c", "user.email=gate@seqlm.invalid"]
    _run(["git", "init", "-q"], project)
    _run(["git", *env_git, "add", "-A"], project)
    _run(["git", *env_git, "commit", "-qm", "smoke baseline"], project)
    return project


def save_smoke_baseline(project: Path, root: Path, config: GateConfig) -> None:
    """Record a reproduced smoke project's dvc.lock and metrics as the new smoke baseline."""
    for f in ["dvc.lock", *metric_files(config)]:
        if (project / f).is_file():
            (root / SMOKE_DIR / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(project / f, root / SMOKE_DIR / f)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seqlm.ops.gate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="run the small configuration against gate/smoke/")
    ap.add_argument("--update", action="store_true",
                    help="record the reproduction as the new baseline instead of failing on regressions")
    ap.add_argument("--rev", default="HEAD", help="git revision holding the baseline (default: %(default)s)")
    ap.add_argument("--config", default=GATE_FILE, help="tolerances file (default: %(default)s)")
    ap.add_argument("--summary", help="also append the Markdown report to this file (e.g. $GITHUB_STEP_SUMMARY)")
    args = ap.parse_args(argv)
    from seqlm.core.logs import setup_logging

    setup_logging()
    root = Path.cwd()
    try:
        config = load_config(root / args.config)
        with tempfile.TemporaryDirectory(prefix="seqlm-smoke-") as tmp:
            if args.smoke:
                project = prepare_smoke_project(root, Path(tmp), config)
                if args.update:
                    _run(["dvc", "repro", "--force"], project)
                    save_smoke_baseline(project, root, config)
                    print(f"smoke baseline written to {SMOKE_DIR}/; review and commit it")
                    return 0
                regressions, report = run_gate(project, config, "HEAD")
            else:
                if args.update:
                    _run(["dvc", "repro", "--force"], root)
                    print("baseline reproduced: review `git diff`, then commit dvc.lock and metrics/")
                    return 0
                regressions, report = run_gate(root, config, args.rev)
    except SeqlmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report)
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as f:
            f.write(report + "\n")
    for r in regressions:
        print(r, file=sys.stderr)
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
