"""The reproduction gate: rerun the pipeline from a clean state and compare it with the committed baseline.

``dvc metrics diff`` shows differences but never fails; this gate does. It

1. reads the baseline committed at a git revision (``HEAD`` by default): ``dvc.lock`` and the metrics
   files;
2. reproduces the pipeline from a clean state (``dvc repro --force``: every stage runs, nothing is
   restored from the run cache);
3. fails on any difference beyond the tolerances:

   * the outputs of the data stages must be byte-identical (their hashes in ``dvc.lock``);
   * each gated metric must stay within its tolerance of the baseline (``gate.yaml``, versioned),
     on both sides: a metric much *better* than the baseline fails too, since a too-good result is
     how leakage and scoring bugs show; an intended improvement is recorded as a new baseline
     (``make baseline``; ``make smoke-baseline`` in smoke mode);

4. prints ``dvc metrics diff --md`` and ``dvc params diff --md`` against the baseline, and the timings
   and throughputs beside them — reported, never gated, since they vary from machine to machine.

The smoke mode runs the same gate on a small configuration in a throw-away copy of the project, whose
committed state is the smoke baseline kept in ``gate/smoke/``. ``--update`` records a new baseline on
purpose (see the README, "Scheduled reproduction").

Run it as ``python -m seqlm.ops.gate [--smoke] [--update] [--summary FILE]`` (or ``seqlm gate``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from seqlm.core.errors import ParamError, SeqlmError
from seqlm.ops.dvc_env import dvc_command, dvc_env
from seqlm.ops.presets import CONF_DIR, compose_params
from seqlm.ops.snapshots import (
    GateConfig,
    MetricTolerance,
    Regression,
    ReportedFigure,
    compare,
    reported_table,
    snapshot_at,
    snapshot_workspace,
)
from seqlm.params import build

log = logging.getLogger(__name__)

GATE_FILE = "gate.yaml"
SMOKE_DIR = Path("gate") / "smoke"


# --- configuration (its sections: seqlm.ops.snapshots, beside the comparison that reads them) ------

__all__ = ["GateConfig", "MetricTolerance", "ReportedFigure", "load_config", "main", "run_gate"]


def load_config(path: str | os.PathLike[str]) -> GateConfig:
    """Read ``gate.yaml``; unknown or mistyped keys are errors naming the file and the key."""
    p = Path(path)
    if not p.is_file():
        raise ParamError(f"gate configuration {str(p)!r} does not exist")
    raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    if isinstance(raw, dict) and raw.get("smoke_params", {}) is None:
        raw.pop("smoke_params")  # an empty ``smoke_params:`` means none
    try:
        return build(GateConfig, "gate", raw)
    except ParamError as e:
        raise ParamError(f"{p}: {e}") from None


# --- running --------------------------------------------------------------------------------------


def _run(cmd: Sequence[str], root: Path, capture: bool = False, shown: str = "") -> str:
    """Run ``cmd`` in ``root`` (logged as ``shown``); its output when ``capture``."""
    shown = shown or " ".join(cmd)
    log.info("$ %s", shown)
    proc = subprocess.run(cmd, cwd=root, text=True, capture_output=capture, env=dvc_env())
    if proc.returncode != 0:
        detail = f"\n{proc.stdout}\n{proc.stderr}" if capture else ""
        raise SeqlmError(f"`{shown}` failed with exit code {proc.returncode}{detail}")
    return proc.stdout if capture else ""


def _dvc(args: Sequence[str], root: Path, capture: bool = False) -> str:
    """``dvc ARGS`` in ``root``, as this interpreter's dvc."""
    return _run(dvc_command(*args), root, capture, shown=" ".join(["dvc", *args]))


def metric_files(config: GateConfig) -> list[str]:
    return sorted({m.file for m in config.metrics} | {r.file for r in config.reported})


def run_gate(
    root: Path,
    config: GateConfig,
    rev: str = "HEAD",
    reproduce: bool = True,
    record_with: str = "make baseline",
) -> tuple[list[Regression], str]:
    """Reproduce (unless told not to) and compare with the baseline at ``rev``; returns the failed
    checks and the Markdown report. ``record_with`` is the command that records a new baseline."""
    files = metric_files(config)
    baseline = snapshot_at(root, rev, files)
    if reproduce:
        _dvc(["repro", "--force"], root)
    reproduced = snapshot_workspace(root, files)
    regressions = compare(baseline, reproduced, config, record_with)
    metrics_md = _dvc(["metrics", "diff", "--md", "--all", rev], root, capture=True)
    params_md = _dvc(["params", "diff", "--md", rev], root, capture=True)
    verdict = (
        f"**Gate failed**: {len(regressions)} check(s) beyond tolerance"
        if regressions
        else "**Gate passed**"
    )
    parts = [f"## Reproduction gate against `{rev}`", "", verdict, ""]
    if regressions:
        parts += [
            "| check | committed | reproduced | tolerance | verdict |",
            "|---|---|---|---|---|",
        ]
        parts += [
            f"| {r.what} | {r.committed} | {r.reproduced} | {r.tolerance} | {r.verdict} |"
            for r in regressions
        ]
        parts.append("")
    parts += [
        "### dvc metrics diff",
        "",
        metrics_md.strip() or "(no metric changed)",
        "",
        "### dvc params diff",
        "",
        params_md.strip() or "(no param changed)",
        "",
        "### Timings and throughput",
        "",
        reported_table(baseline, reproduced, config),
        "",
    ]
    return regressions, "\n".join(parts)


def tracked_files(root: Path) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=True
    )
    return [f for f in out.stdout.split("\0") if f]


def hydra_override(key: str, value: Any) -> str:
    """``key=value`` in Hydra's override grammar (a JSON scalar or list is valid there)."""
    return f"{key}={json.dumps(value)}"


def smoke_params(
    overrides: Mapping[str, Any], out: str | os.PathLike[str], conf_dir: str | os.PathLike[str]
) -> dict[str, Any]:
    """Write to ``out`` the params ``conf_dir`` composes with the smoke configuration's dotted
    ``overrides``: the Hydra composition ``dvc exp run -S`` and ``seqlm params`` use, so a key
    that is not in the composed params is refused as it is there."""
    try:
        return compose_params([hydra_override(k, v) for k, v in overrides.items()], out, conf_dir)
    except ParamError as e:
        raise ParamError(f"{GATE_FILE} smoke_params: {e}") from None


def prepare_smoke_project(root: Path, workdir: Path, config: GateConfig) -> Path:
    """A copy of the project's tracked files whose committed state is the smoke baseline."""
    project = workdir / "project"
    for rel in tracked_files(root):
        src = root / rel
        if src.is_file():
            (project / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, project / rel)
    smoke_params(config.smoke_params, project / "params.yaml", root / CONF_DIR)
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


def build_parser(prog: str = "python -m seqlm.ops.gate") -> argparse.ArgumentParser:
    """The ``python -m seqlm.ops.gate`` (``seqlm gate``) arguments."""
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--smoke", action="store_true", help="run the small configuration against gate/smoke/"
    )
    ap.add_argument(
        "--update",
        action="store_true",
        help="record the reproduction as the new baseline instead of comparing "
        "(make baseline; make smoke-baseline with --smoke)",
    )
    ap.add_argument(
        "--rev", default="HEAD", help="git revision holding the baseline (default: %(default)s)"
    )
    ap.add_argument("--config", default=GATE_FILE, help="tolerances file (default: %(default)s)")
    ap.add_argument(
        "--summary", help="also append the Markdown report to this file (e.g. $GITHUB_STEP_SUMMARY)"
    )
    return ap


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the gate (or record a baseline); exit 0 when it passes, 1 on a failed check, 2 on an
    error."""
    args = build_parser(prog or "python -m seqlm.ops.gate").parse_args(argv)
    from seqlm.core.logs import setup_logging

    setup_logging()
    root = Path.cwd()
    try:
        config = load_config(root / args.config)
        with tempfile.TemporaryDirectory(prefix="seqlm-smoke-") as tmp:
            if args.smoke:
                project = prepare_smoke_project(root, Path(tmp), config)
                if args.update:
                    _dvc(["repro", "--force"], project)
                    save_smoke_baseline(project, root, config)
                    print(f"smoke baseline written to {SMOKE_DIR}/; review and commit it")
                    return 0
                regressions, report = run_gate(
                    project, config, "HEAD", record_with="make smoke-baseline"
                )
            else:
                if args.update:
                    _dvc(["repro", "--force"], root)
                    print(
                        "baseline reproduced: review `git diff`, then commit dvc.lock and metrics/"
                    )
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
