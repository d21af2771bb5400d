"""End to end: the reproduction gate on a committed tiny pipeline, with the real dvc."""

import json

import pytest

pytestmark = pytest.mark.slow


def gate(project, *args):
    return project.run("python", "-m", "seqlm.ops.gate", *args, check=False)


def test_the_gate_passes_on_the_committed_baseline_and_prints_both_diffs(baseline):
    result = gate(baseline)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "**Gate passed**" in result.stdout
    assert "### dvc metrics diff" in result.stdout and "### dvc params diff" in result.stdout
    assert "train_seconds" in result.stdout  # timings are reported beside the diff


def test_the_gate_fails_when_a_committed_metric_is_beyond_its_tolerance(baseline):
    path = baseline.root / "metrics/eval.json"
    metrics = json.loads(path.read_text())
    committed = metrics["test"]["perplexity"] * 0.9  # a baseline 10% better than what reproduces
    metrics["test"]["perplexity"] = committed
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    baseline.git("commit", "-qam", "a better test perplexity than the code gives")

    result = gate(baseline)
    assert result.returncode == 1
    [line] = [x for x in result.stderr.splitlines() if "eval.json:test.perplexity" in x]
    assert line.startswith(f"REGRESSION metrics/eval.json:test.perplexity: committed {committed:.6g}, reproduced ")
    assert "(+11.11%)" in line and line.endswith("(tolerance: +2%)")
    assert "**Gate failed**" in result.stdout


def test_the_gate_fails_when_a_data_output_changes(baseline):
    baseline.set_params(tokenize={"train_fraction": 0.8, "val_fraction": 0.1, "test_fraction": 0.1})
    result = gate(baseline)
    assert result.returncode == 1
    assert "REGRESSION data output data/tokens (stage tokenize): committed hash " in result.stderr
    assert "tokenize.train_fraction" in result.stdout  # the params diff shows why
