"""The training benchmark still runs end to end (its figures are read by hand, not tested)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

from pipeline_support import TINY

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_bench_train():
    spec = importlib.util.spec_from_file_location(
        "bench_train", REPO_ROOT / "benchmarks" / "bench_train.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_training_benchmark_runs_both_loops_and_prints_the_comparison(
    tmp_path: Path, tiny_text: str, capsys
) -> None:
    text = tmp_path / "text.txt"
    text.write_text(tiny_text * 10, encoding="utf-8")
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    for section, values in TINY.items():
        params[section].update(values)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params), encoding="utf-8")

    # a target every run meets at its first validation: the plumbing, not the speed, is under test
    code = load_bench_train().main(
        [
            "--text",
            str(text),
            "--params",
            str(params_file),
            "--target",
            "1000",
            "--project-eval-every",
            "1",
            "--textbook-eval-every",
            "1",
            "--warm-up-steps",
            "1",
            "--threads",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert "project step 1: val perplexity" in out and "textbook step 1: val perplexity" in out
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^(project|textbook)\s+([\d,]+)\s+\d+\s+\d+", out, re.M)
    }
    assert set(rows) == {"project", "textbook"}
    assert all(int(v.replace(",", "")) > 0 for v in rows.values())  # tokens/s
    verdict = re.search(
        r"speed-up to val perplexity 1000\.0: ([\d.]+)x wall time.*\((meets|misses) the 4x", out
    )
    assert verdict, out
    assert code == (0 if verdict.group(2) == "meets" else 1)
