"""The reproduction gate's comparison: what counts as a regression, and how it is reported."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from seqlm.core.errors import ParamError
from seqlm.ops.gate import hydra_override, load_config, smoke_params
from seqlm.ops.snapshots import (
    GateConfig,
    MetricTolerance,
    ReportedFigure,
    Snapshot,
    compare,
    dotted,
    lock_outs,
    snapshot_at,
)

ROOT = Path(__file__).resolve().parents[2]

LOCK = """schema: '2.0'
stages:
  clean:
    cmd: python -m stages.clean
    outs:
    - path: data/clean/lines.txt
      hash: md5
      md5: aaa
  corpus:
    outs:
    - path: data/corpus
      hash: md5
      md5: bbb.dir
  train:
    outs:
    - path: data/model
      hash: md5
      md5: ccc.dir
"""

CONFIG = GateConfig(
    data_stages=("clean", "corpus"),
    metrics=(
        MetricTolerance(file="metrics/eval.json", key="test.perplexity", tolerance_pct=2.0),
        MetricTolerance(
            file="metrics/eval.json", key="accuracy", tolerance_pct=1.0, better="higher"
        ),
    ),
    reported=(ReportedFigure(file="metrics/train.json", key="tokens_per_second"),),
)


def snapshot(lock: str = LOCK, ppl: float = 4.0, acc: float = 0.5) -> Snapshot:
    return Snapshot(
        lock_outs(lock), {"metrics/eval.json": {"test": {"perplexity": ppl}, "accuracy": acc}}
    )


def test_an_identical_reproduction_passes():
    assert compare(snapshot(), snapshot(), CONFIG) == []


def test_a_metric_within_its_tolerance_on_either_side_passes():
    assert compare(snapshot(ppl=4.0), snapshot(ppl=4.079), CONFIG) == []
    assert compare(snapshot(ppl=4.0), snapshot(ppl=3.921), CONFIG) == []
    assert compare(snapshot(acc=0.5), snapshot(acc=0.504), CONFIG) == []


def test_a_metric_worse_than_its_tolerance_fails_naming_the_values_and_the_tolerance():
    [r] = compare(snapshot(ppl=4.0), snapshot(ppl=4.2), CONFIG)
    assert not r.improved and r.verdict == "worse than its tolerance"
    assert str(r) == (
        "REGRESSION metrics/eval.json:test.perplexity: committed 4, reproduced 4.2 (+5.00%) "
        "(tolerance: ±2%)"
    )


def test_a_metric_better_than_its_tolerance_fails_and_says_to_record_a_new_baseline():
    [r] = compare(snapshot(ppl=4.0), snapshot(ppl=3.0), CONFIG)
    assert r.improved
    assert str(r).startswith(
        "IMPROVED BEYOND TOLERANCE metrics/eval.json:test.perplexity: committed 4, reproduced 3 "
        "(-25.00%) (tolerance: ±2%)"
    )
    assert str(r).endswith(
        "if the improvement is intended, record a new baseline with `make baseline`"
    )
    assert "`make baseline`" in r.verdict


def test_the_smoke_gate_names_its_own_baseline_command():
    [r] = compare(snapshot(ppl=4.0), snapshot(ppl=3.0), CONFIG, record_with="make smoke-baseline")
    assert str(r).endswith("record a new baseline with `make smoke-baseline`")


def test_a_higher_is_better_metric_fails_when_it_drops_and_when_it_jumps():
    [dropped] = compare(snapshot(acc=0.5), snapshot(acc=0.49), CONFIG)
    assert "accuracy" in dropped.what and dropped.tolerance == "±1%" and not dropped.improved
    [jumped] = compare(snapshot(acc=0.5), snapshot(acc=0.6), CONFIG)
    assert "accuracy" in jumped.what and jumped.improved


def test_a_changed_data_output_fails_naming_the_file_and_both_hashes():
    [r] = compare(snapshot(), snapshot(LOCK.replace("md5: aaa", "md5: zzz")), CONFIG)
    assert r.what == "data output data/clean/lines.txt (stage clean)"
    assert (r.committed, r.reproduced, r.tolerance) == ("hash aaa", "hash zzz", "byte-identical")
    assert r.verdict == "changed"


def test_outputs_of_stages_outside_the_data_stages_are_not_compared():
    assert compare(snapshot(), snapshot(LOCK.replace("ccc.dir", "ddd.dir")), CONFIG) == []


def test_a_missing_metric_is_a_regression():
    reproduced = Snapshot(lock_outs(LOCK), {"metrics/eval.json": {"accuracy": 0.5}})
    [r] = compare(snapshot(), reproduced, CONFIG)
    assert r.reproduced == "missing" and r.verdict == "missing"


def test_the_committed_gate_configuration_names_what_the_pipeline_makes(tmp_path):
    """Every gated data stage is a stage of dvc.yaml with outputs in dvc.lock, every gated metric
    and reported figure a number in its committed metrics file, every smoke override a key of
    params.yaml: a typo would otherwise only show as 'missing' in a gate run."""
    config = load_config(ROOT / "gate.yaml")
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    outs = lock_outs((ROOT / "dvc.lock").read_text())
    assert config.data_stages and config.metrics and config.reported
    for stage in config.data_stages:
        assert stage in stages and outs.get(stage), f"data stage {stage!r}"
    for figure in (*config.metrics, *config.reported):
        value = dotted(json.loads((ROOT / figure.file).read_text()), figure.key)
        assert isinstance(value, (int, float)), f"{figure.file}:{figure.key}"
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    smoke = smoke_params(config.smoke_params, tmp_path / "params.yaml", ROOT / "conf")
    assert smoke == yaml.safe_load((tmp_path / "params.yaml").read_text())
    for key, value in config.smoke_params.items():
        assert dotted(smoke, key) == value and dotted(params, key) != value
    for key in ("download", "tokenize", "vocab", "evaluate"):  # the rest is the committed params
        assert smoke[key] == params[key]


def git(root: Path, *args: str) -> None:
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", *identity, *args], cwd=root, check=True, capture_output=True)


def test_a_revisions_metrics_are_read_as_committed_from_any_working_directory(
    tmp_path, monkeypatch
):
    repo = tmp_path / "repo"
    (repo / "metrics").mkdir(parents=True)
    git(repo, "init", "-q")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    (repo / "dvc.lock").write_text(LOCK)
    committed = {"test": {"perplexity": 4.25}, "accuracy": 0.5}
    (repo / "metrics/eval.json").write_text(json.dumps(committed))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline")
    (repo / "metrics/eval.json").write_text(json.dumps({"test": {"perplexity": 9.0}}))
    monkeypatch.chdir(tmp_path)  # the smoke gate reads a project that is not the working directory

    snap = snapshot_at(repo, "HEAD", ["metrics/eval.json", "metrics/absent.json"])
    assert snap.metrics == {"metrics/eval.json": committed}  # an absent file is left out
    assert snap.outs == lock_outs(LOCK)


def test_a_bad_gate_configuration_names_the_key(tmp_path):
    path = tmp_path / "gate.yaml"
    path.write_text("metrics:\n  - file: m.json\n    key: x\n    max_worse: 1\n")
    with pytest.raises(ParamError, match="unknown key.*max_worse"):
        load_config(path)


def test_smoke_overrides_are_composed_by_hydra_and_must_name_existing_params(tmp_path):
    out = tmp_path / "params.yaml"
    smoke = smoke_params({"train.epochs": 1, "model": "gru"}, out, ROOT / "conf")
    assert smoke["train"]["epochs"] == 1 and smoke["model"] == "gru"
    assert yaml.safe_load(out.read_text()) == smoke
    with pytest.raises(ParamError, match=r"gate.yaml smoke_params: .*train\.epoch"):
        smoke_params({"train.epoch": 1}, tmp_path / "bad.yaml", ROOT / "conf")
    assert hydra_override("tokenize.token", "char") == 'tokenize.token="char"'
    assert hydra_override("x", [1, 2]) == "x=[1, 2]" and hydra_override("y", True) == "y=true"
