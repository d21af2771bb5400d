"""Using what a pipeline run trained: ``seqlm score`` reproduces ``metrics/eval.json``'s test
figures for the neural model, the n-gram and the ensemble; ``seqlm generate`` runs from the files;
the model ships as a DVC artifact."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def seqlm_cli(project, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return project.run(sys.executable, "-m", "seqlm.ops.cli", *args, check=check)


def total_nll(output: str) -> float:
    rows = [json.loads(line) for line in output.splitlines()]
    assert rows[-1]["line"] is None  # the total comes last
    assert sum(r["nll"] for r in rows[:-1]) == pytest.approx(rows[-1]["nll"], rel=1e-9)
    return rows[-1]["nll"]


def test_scoring_the_test_split_reproduces_the_evaluate_stage(baseline):
    evaluated = json.loads((baseline.root / "metrics" / "eval.json").read_text())
    ngram = json.loads((baseline.root / "metrics" / "ngram.json").read_text())
    test_text = "data/tokens/test.txt"  # the test split's lines, as the tokenize stage wrote them
    expected = {
        "--model=data/model": evaluated["test"]["nll"],
        "--ngram=data/ngram": ngram["test"]["nll"],
        "--ensemble=data/ensemble.json": evaluated["ensemble"]["test"]["nll"],
    }
    members = evaluated["ensemble"]["members"]
    assert "lstm-dynamic" in members and "ngram-dynamic" in members  # the dynamic members too
    for option, want in expected.items():
        got = total_nll(seqlm_cli(baseline, "score", option, "--json", test_text).stdout)
        assert abs(got - want) <= 1e-9 * want, option
    portable = seqlm_cli(baseline, "score", "--model=data/model/config.json", "--json", test_text)
    assert (
        abs(total_nll(portable.stdout) - evaluated["test"]["nll"])
        <= 1e-9 * evaluated["test"]["nll"]
    )

    tokens = seqlm_cli(baseline, "score", "--tokens", test_text).stdout.splitlines()
    assert tokens[0] == "model\tfile\tline\ttoken\tlogprob\toov"
    assert len(tokens) - 1 == evaluated["test"]["tokens"]

    first = seqlm_cli(baseline, "generate", "--prompt", "The Time", "--max-tokens", "15").stdout
    again = seqlm_cli(baseline, "generate", "--prompt", "The Time", "--max-tokens", "15").stdout
    assert first == again and first.startswith("the time")
    beam = seqlm_cli(
        baseline,
        "generate",
        "--ensemble",
        "data/ensemble.json",
        "--beam",
        "3",
        "--max-tokens",
        "10",
    )
    assert len(beam.stdout.rstrip("\n")) == 10
    bad = seqlm_cli(baseline, "score", "--model", "params.yaml", test_text, check=False)
    assert bad.returncode == 2 and "not a model seqlm can load" in bad.stderr


def test_the_model_ships_as_a_dvc_artifact_of_a_commit_and_of_an_experiment(baseline, tmp_path):
    import seqlm

    # a version is a git tag on the commit that holds it (GTO, DVC's artifact registry)
    baseline.run("gto", "register", "lm", "HEAD", "--version", "v1.0.0")
    baseline.dvc("exp", "run", "-n", "short", "-S", "train.epochs=1")
    refs = baseline.git("for-each-ref", "--format=%(objectname) %(refname)", "refs/exps").stdout
    short_rev = next(line.split()[0] for line in refs.splitlines() if line.endswith("/short"))
    baseline.run("gto", "register", "lm", short_rev, "--version", "v1.1.0")
    got = {}
    for version in ("v1.0.0", "v1.1.0"):
        out = tmp_path / version
        baseline.dvc("artifacts", "get", str(baseline.root), "lm", "--rev", version, "-o", str(out))
        assert {p.name for p in out.iterdir()} >= {"model.pt", "model.safetensors", "config.json"}
        got[version] = seqlm.load(out / "model.pt")
        portable = seqlm.load(out / "config.json")
        assert portable.score("the time traveller") == got[version].score("the time traveller")
    # v1.0.0 is the committed baseline's model, v1.1.0 the experiment's (now in the workspace)
    committed = json.loads(baseline.git("show", "HEAD:metrics/eval.json").stdout)
    experiment = json.loads((baseline.root / "metrics" / "eval.json").read_text())
    test = (baseline.root / "data" / "tokens" / "test.txt").read_text(encoding="utf-8")
    assert committed["test"]["nll"] != experiment["test"]["nll"]
    for version, metrics in (("v1.0.0", committed), ("v1.1.0", experiment)):
        assert got[version].score(test).nll == pytest.approx(metrics["test"]["nll"], rel=1e-9)
