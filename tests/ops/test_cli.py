"""The `seqlm` console script: each subcommand runs its module's main with the rest of the line."""

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from seqlm.ops import cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", ["gate", "report", "plots"])
def test_each_subcommand_passes_its_options_to_its_module(monkeypatch, command):
    calls = []
    module = importlib.import_module(f"seqlm.ops.{command}")
    monkeypatch.setattr(module, "main", lambda argv, prog: calls.append((argv, prog)) or 7)

    status = cli.main([command, "--out", "x.md", "-e", "HEAD"])

    assert status == 7
    assert calls == [(["--out", "x.md", "-e", "HEAD"], f"seqlm {command}")]


def test_a_subcommand_help_is_the_module_help_under_the_seqlm_name(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["gate", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: seqlm gate ") and "--smoke" in out


def test_an_unknown_subcommand_is_an_error_that_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["gates"])
    assert stop.value.code == 2
    listed = ", ".join(f"'{name}'" for name in cli.COMMANDS)
    assert f"invalid choice: 'gates' (choose from {listed})" in capsys.readouterr().err
    assert {"gate", "report", "plots", "params"} <= set(cli.COMMANDS)


def test_pyproject_declares_the_console_script():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"] == {"seqlm": "seqlm.ops.cli:main"}


@pytest.mark.parametrize("module", ["seqlm.ops.gate", "seqlm.ops.report", "seqlm.ops.plots"])
def test_the_python_m_forms_keep_working(module):
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python -m {module} ")
