"""Write ``dvc.yaml``'s plots as standalone SVG files (for a README, a paper), offline.

``dvc plots show --json`` (or ``dvc plots diff REV ... --json``) gives each plot's Vega-Lite spec
with its data inlined; ``tools/plots/svg.js`` compiles it with the pinned vega-lite and renders it
with vega's headless SVG renderer (Node, no browser, no network)::

    seqlm plots --svg reports/figures --target val_perplexity_against_time -e main <experiment>
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from seqlm.ops.dvc_plots import PlotsError, dvc_plots_command, run_dvc

SCRIPT = Path(__file__).resolve().parents[3] / "tools" / "plots" / "svg.js"


class SvgError(PlotsError):
    """The plots could not be written as SVG."""


def write_svgs(
    root: Path,
    out_dir: Path,
    targets: Sequence[str] | None = None,
    revisions: Sequence[str] | None = None,
    *,
    experiment: bool = False,
    script: Path = SCRIPT,
) -> list[Path]:
    """Write each plot of the DVC repository ``root`` (``targets``: only these ids) as
    ``out_dir/<plot id>.svg`` (a relative ``out_dir`` is under ``root``); the files written."""
    node = shutil.which("node")
    if node is None or not (script.parent / "node_modules" / "vega").is_dir():
        raise SvgError(
            "writing SVG needs Node.js and the pinned Vega packages: "
            f"`npm ci --prefix {script.parent}` (make setup-dev)"
        )
    root = Path(root).resolve()
    dvc = run_dvc(dvc_plots_command(["--json"], targets, revisions, experiment), root)
    out = Path(root, out_dir)
    svg = subprocess.run(
        [node, str(script), str(out), *(targets or [])],
        input=dvc.stdout,
        capture_output=True,
        text=True,
    )
    if svg.returncode != 0:
        raise SvgError(f"rendering SVG failed: {svg.stderr.strip()}")
    return [Path(line) for line in svg.stdout.splitlines() if line.strip()]
