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


def commit_test_perplexity(project, factor: float) -> float:
    """Commit metrics/eval.json with its test perplexity scaled by ``factor``; return that value."""
    path = project.root / "metrics/eval.json"
    metrics = json.loads(path.read_text())
    committed = metrics["test"]["perplexity"] * factor
    metrics["test"]["perplexity"] = committed
    path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    project.git("commit", "-qam", f"a test perplexity {factor} times what the code gives")
    return committed


def test_the_gate_fails_when_a_metric_is_worse_than_its_tolerance(baseline):
    committed = commit_test_perplexity(baseline, 0.9)  # the reproduction is 11% worse

    result = gate(baseline)
    assert result.returncode == 1
    [line] = [x for x in result.stderr.splitlines() if "eval.json:test.perplexity" in x]
    assert line.startswith(
        f"REGRESSION metrics/eval.json:test.perplexity: committed {committed:.6g}, reproduced "
    )
    assert "(+11.11%)" in line and line.endswith("(tolerance: ±2%)")
    assert "**Gate failed**" in result.stdout


def test_the_gate_fails_when_a_metric_is_better_than_its_tolerance(baseline):
    commit_test_perplexity(baseline, 1.25)  # the reproduction is 20% better

    result = gate(baseline)
    assert result.returncode == 1
    [line] = [x for x in result.stderr.splitlines() if "eval.json:test.perplexity" in x]
    assert line.startswith("IMPROVED BEYOND TOLERANCE metrics/eval.json:test.perplexity: ")
    assert "(-20.00%)" in line and line.endswith("record a new baseline with `make baseline`")
    assert "**Gate failed**" in result.stdout


def test_the_gate_fails_when_a_data_output_changes(baseline):
    baseline.set_params(tokenize={"train_fraction": 0.8, "val_fraction": 0.1, "test_fraction": 0.1})
    result = gate(baseline)
    assert result.returncode == 1
    assert "REGRESSION data output data/tokens (stage tokenize): committed hash " in result.stderr
    assert "tokenize.train_fraction" in result.stdout  # the params diff shows why
