"""``seqlm plots --svg``: the plots as standalone SVG files, rendered by Vega in Node, offline.

They need Node.js and ``npm ci --prefix tools/plots`` (``make setup-dev``); they fail, never skip,
where those are missing."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from seqlm.ops.dvc_plots import dvc_plots_command
from seqlm.ops.plots import main as plots_main
from seqlm.ops.plots_svg import SCRIPT, SvgError, write_svgs


def dvc_json(*plots: str) -> str:
    """What ``dvc plots show --json`` prints for line plots of these ids, two points each."""
    content = {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "data": {"values": [{"step": 0, "ppl": 5.0}, {"step": 1, "ppl": 4.0}]},
        "mark": "line",
        "encoding": {
            "x": {"field": "step", "type": "quantitative"},
            "y": {"field": "ppl", "type": "quantitative"},
        },
    }
    return json.dumps({"data": {p: [{"type": "vega", "content": content}] for p in plots}})


def run_script(tmp_path: Path, stdin: str, *ids: str) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    assert node, "Node.js is needed (make setup-dev)"
    cmd = [node, str(SCRIPT), str(tmp_path / "svg"), *ids]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True)


def test_each_plot_becomes_an_svg_file_with_its_line(tmp_path: Path) -> None:
    done = run_script(tmp_path, dvc_json("curves", "dvclive/x.tsv"))
    assert done.returncode == 0, done.stderr
    written = sorted(Path(p).name for p in done.stdout.split())
    assert written == ["curves.svg", "dvclive_x.tsv.svg"]  # ids made file names
    svg = (tmp_path / "svg" / "curves.svg").read_text()
    assert svg.startswith("<svg") and "<path" in svg


def test_named_plots_only_and_an_unknown_one_is_an_error(tmp_path: Path) -> None:
    done = run_script(tmp_path, dvc_json("a", "b"), "b")
    assert [Path(p).name for p in done.stdout.split()] == ["b.svg"]
    done = run_script(tmp_path, dvc_json("a"), "a", "nope")
    assert done.returncode == 1 and "no such plot: nope" in done.stderr


def test_without_the_vega_packages_the_error_says_how_to_install_them(tmp_path: Path) -> None:
    (tmp_path / "svg.js").write_text("")
    with pytest.raises(SvgError, match="npm ci --prefix"):
        write_svgs(tmp_path, Path("out"), script=tmp_path / "svg.js")


def test_the_json_command_puts_revisions_before_the_targets() -> None:
    assert dvc_plots_command(["--json"], ["p"])[4:] == ["show", "--json", "p"]
    cmd = dvc_plots_command(["--json"], ["p", "q"], ["main", "exp-1"], True)
    assert cmd[4:] == ["diff", "main", "exp-1", "--json", "--experiment", "--targets", "p", "q"]


@pytest.mark.slow
def test_the_pipelines_curve_against_time_is_written_as_svg(baseline, capsys) -> None:
    target = "val_perplexity_against_time"
    argv = ["--root", str(baseline.root), "--target", target, "--svg", "figures"]
    assert plots_main(argv) == 0
    svg = baseline.root / "figures" / f"{target}.svg"
    assert str(svg) in capsys.readouterr().out
    text = svg.read_text()
    assert "<path" in text and "training minutes" in text
