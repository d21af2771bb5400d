"""End to end: the neural stages and experiments with the real dvc, on the tiny corpus."""

import json
import time

import pytest

from pipeline_support import ran
from seqlm.ops.report import EVAL, leaderboard_markdown, load_entries, rank

pytestmark = pytest.mark.slow


def exp_metrics(project) -> dict[str, dict]:
    """``{experiment name: {"model": ..., "val": ..., "test": ..., "interpolated": ...}}`` (the
    perplexities in metrics/eval.json), read through dvc.api.exp_show()."""
    return {
        entry.name: {
            "model": entry.params.get("model"),
            "val": entry.metric(EVAL, "val.perplexity"),
            "test": entry.metric(EVAL, "test.perplexity"),
            "interpolated": entry.metric(EVAL, "interpolation.test.perplexity"),
            "dynamic": entry.metric(EVAL, "dynamic.test.perplexity"),
            "ensemble": entry.metric(EVAL, "ensemble.test.perplexity"),
        }
        for entry in load_entries(project.root)
    }


def test_the_default_pipeline_writes_every_metric_in_the_shared_record_shape(baseline):
    ev = json.loads((baseline.root / "metrics/eval.json").read_text())
    ngram = json.loads((baseline.root / "metrics/ngram.json").read_text())
    record = {"tokens", "nll", "perplexity", "bits_per_char", "oov"}
    for metrics in (ev, ngram, ev["interpolation"]):
        for split in ("val", "test"):
            assert set(metrics[split]) >= record
    assert ev["val"]["tokens"] == ngram["val"]["tokens"]  # both scored every val target once
    assert 0.0 <= ev["interpolation"]["lambda"] <= 1.0
    # the mixture with λ chosen on val is never worse on val than either model alone
    assert ev["interpolation"]["val"]["nll"] <= min(ev["val"]["nll"], ngram["val"]["nll"]) + 1e-6
    # dynamic evaluation and the ensemble beside the static figures; the ensemble fitted on val
    # is never worse on val than any of its members
    for metrics in (ev["dynamic"], ev["ensemble"]):
        assert set(metrics["val"]) >= record and set(metrics["test"]) >= record
    assert set(ev["ensemble"]["members"]) == {"ngram", "lstm", "ngram-dynamic", "lstm-dynamic"}
    assert sum(ev["ensemble"]["members"].values()) == pytest.approx(1.0)
    members_nll = (ev["val"]["nll"], ngram["val"]["nll"], ev["dynamic"]["val"]["nll"])
    members_nll += (ngram["dynamic"]["val"]["nll"],)
    assert ev["ensemble"]["val"]["nll"] <= min(members_nll) + 1e-6
    assert (baseline.root / "metrics/samples.md").read_text().count("time traveller") >= 2
    assert (baseline.root / "dvclive/train/plots/metrics/val/perplexity.tsv").is_file()


MODEL_OPTIONS = {
    "seq2seq": ["-S", "net.bidirectional=true"],
    # the transformer's own net keys, so that a change of them reruns train and evaluate only
    "transformer": ["-S", "net.context=16", "-S", "net.heads=4", "-S", "net.positions=rotary"],
}


@pytest.mark.parametrize("model", ["rnn", "gru", "lstm", "seq2seq", "transformer"])
def test_each_model_runs_as_an_experiment_rerunning_only_train_and_evaluate(baseline, model):
    params = ["-S", f"model={model}", *MODEL_OPTIONS.get(model, [])]
    params += ["-S", "train.seed=1"]  # so that even `lstm` (the default) is a new experiment
    run = baseline.dvc("exp", "run", *params)
    assert ran(run.stdout) == ["train", "evaluate"]
    [(name, exp)] = [
        (n, e) for n, e in exp_metrics(baseline).items() if n != "master" and n != "main"
    ]
    assert exp["model"] == model
    assert exp["test"] > 1.0
    assert exp["interpolated"] > 1.0
    assert exp["ensemble"] > 1.0
    # seq2seq reads windows from a fresh encoder, no stream to adapt along: dynamic evaluation is
    # skipped for it (exp_show then shows no number in the column the baseline's figure opened)
    streaming = model != "seq2seq"
    assert isinstance(exp["dynamic"], float) == streaming, exp["dynamic"]


def test_a_queue_of_two_models_runs_and_the_report_ranks_them(baseline, tmp_path):
    baseline.dvc("exp", "run", "--queue", "-S", "model=rnn,gru")
    baseline.dvc("queue", "start", "--jobs", "1")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = baseline.dvc("queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    baseline.dvc("queue", "stop", check=False)
    exps = exp_metrics(baseline)
    models = sorted(e["model"] for n, e in exps.items() if e["model"] != "lstm")
    assert models == ["gru", "rnn"], f"queue status:\n{status}\nexperiments: {exps}"
    for exp in exps.values():
        assert exp["val"] > 1.0

    entries = load_entries(baseline.root)
    md = leaderboard_markdown(entries)
    rows = [line for line in md.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 3  # the committed baseline and the two experiments
    vals = [e.metric("metrics/eval.json", "val.perplexity") for e in rank(entries)]
    assert vals == sorted(vals)
    for entry, row in zip(rank(entries), rows):
        assert f"| {entry.params['model']} |" in row and f"{vals[rows.index(row)]:.3f}" in row


def test_an_experiments_model_joins_the_ensemble_by_the_readme_recipe(baseline):
    """README, "Extra members": `dvc get` an experiment's checkpoint into models/extra, `dvc add`
    it, name it in evaluate.members: only evaluate reruns, and the ensemble weighs the member."""
    baseline.dvc("exp", "run", "--temp", "-S", "model=gru")  # the workspace stays the baseline
    refs = baseline.git("for-each-ref", "refs/exps", "--format=%(refname) %(objectname)").stdout
    # the one experiment's commit (what `dvc exp show --sha` lists), not dvc's own exec refs
    [sha] = [line.split()[1] for line in refs.splitlines() if "/exec/" not in line]
    out = "models/extra/gru.pt"
    baseline.dvc("get", ".", "data/model/model.pt", "--rev", sha, "-o", out)
    baseline.dvc("add", out)
    baseline.git("add", f"{out}.dvc", "models/extra/.gitignore")
    run = baseline.dvc("exp", "run", "-S", "evaluate.members=[gru]")
    assert ran(run.stdout) == ["evaluate"]
    ev = json.loads((baseline.root / "metrics/eval.json").read_text())
    weights = ev["ensemble"]["members"]
    assert set(weights) == {
        "ngram", "lstm", "ngram-dynamic", "lstm-dynamic", "extra-gru", "extra-gru-dynamic"
    }  # fmt: skip
    assert sum(weights.values()) == pytest.approx(1.0)
    assert ev["ensemble"]["val"]["nll"] <= ev["dynamic"]["val"]["nll"] + 1e-6
