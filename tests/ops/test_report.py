"""The leaderboard, from `dvc.api.exp_show()` rows."""

import os
import subprocess
import sys

import pytest

from seqlm.ops.report import entries_from_exp_show, leaderboard_markdown, load_entries, rank

PARAM_KEYS = ["model", "net.hidden_size", "net.layers", "generate.seed"]


def row(
    rev,
    params,
    val,
    test,
    *,
    typ="branch_commit",
    name=None,
    state=None,
    ngram_test=4.0,
    seconds=120.0,
):
    """One row as dvc.api.exp_show() gives it: numbers read as floats, shared keys file-prefixed."""
    return {
        "Experiment": name,
        "rev": rev,
        "typ": typ,
        "Created": "12:00 PM",
        "parent": None,
        "State": state,
        "Executor": None if state is None else "Dvc-task",
        "metrics/eval.json:val.perplexity": val,
        "metrics/eval.json:test.perplexity": test,
        "metrics/eval.json:val.bits_per_char": 1.9,
        "metrics/eval.json:test.bits_per_char": 2.0,
        "metrics/eval.json:test.bits_per_byte": 1.5,
        "interpolation.test.perplexity": None if test is None else test - 0.5,
        "dynamic.test.perplexity": None if test is None else test - 0.2,
        "ensemble.test.perplexity": None if test is None else test - 0.7,
        "metrics/ngram.json:val.perplexity": 3.9,
        "metrics/ngram.json:test.perplexity": ngram_test,
        "metrics/ngram.json:val.bits_per_char": 2.1,
        "metrics/ngram.json:test.bits_per_char": 2.2,
        "train_seconds": seconds,
        **params,
        "stages/train.py": "0123456789abcdef",  # a dependency's hash: not a param
    }


def params(model, hidden, seed):
    return {
        "model": model,
        "net.hidden_size": float(hidden),
        "net.layers": "[1, 2]",
        "generate.seed": float(seed),
    }


EXP_SHOW = [
    row("workspace", params("lstm", 256, 0), 5.0, 5.2, typ="baseline"),
    row("main", params("lstm", 256, 0), 5.0, 5.2, typ="baseline"),
    row("bbbbbbb", params("gru", 256, 1), 4.0, 4.4, name="fast-gru"),
    row("ddddddd", params("gru", 8, 0), None, None, name="still-queued", state="Queued"),
    row("eeeeeee", params("gru", 16, 0), None, None, name="broken", state="Failed"),
    row(
        "ccccccc",
        params("rnn", 512, 0),
        6.0,
        6.1,
        name="big-rnn",
        state="Success",
        typ="branch_base",
    ),
    row("0ld0000", params("lstm", 128, 0), 7.0, 7.2, typ="baseline"),  # an older commit
]


def entries():
    return entries_from_exp_show(EXP_SHOW, PARAM_KEYS, {"main": "aaaaaaaa" * 5})


def test_every_finished_experiment_becomes_an_entry_but_not_the_workspace_the_queue_or_old_commits():
    found = entries()
    assert [e.name for e in found] == ["main", "fast-gru", "big-rnn"]
    assert [e.baseline for e in found] == [True, False, False]
    assert found[0].rev == "aaaaaaa"


def test_key_params_are_the_model_and_what_differs_between_entries():
    by_name = {e.name: e for e in entries()}
    assert by_name["big-rnn"].key_params == {"model": "rnn", "net.hidden_size": 512.0}
    # generate.seed differs too, but sampling settings do not change what a model learns
    assert "generate.seed" not in by_name["main"].key_params
    assert "stages/train.py" not in by_name["main"].params  # a dependency, not a param


def test_a_metric_is_found_under_its_file_prefixed_or_its_bare_column():
    main = entries()[0]
    assert main.metric("metrics/eval.json", "val.perplexity") == 5.0
    assert main.metric("metrics/ngram.json", "val.perplexity") == 3.9
    assert main.metric("metrics/eval.json", "interpolation.test.perplexity") == 4.7
    assert main.metric("metrics/eval.json", "absent") is None


def test_entries_are_ranked_by_val_perplexity():
    assert [e.name for e in rank(entries())] == ["fast-gru", "main", "big-rnn"]


def test_the_markdown_table_lists_figures_and_the_ratio_to_the_ngram():
    md = leaderboard_markdown(entries(), plots_link="plots/index.html")
    rows = [line for line in md.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 3
    assert rows[0] == (
        "| 1 | fast-gru (bbbbbbb) | gru | net.hidden_size=256 | 4.000 | 4.400 "
        "| 1.900 | 2.000 | 1.500 | 3.900 | 4.200 | 3.700 | 4.000 | 1.100 | 2.0 |"
    )  # 4.4 / 4.0; 120 s
    assert rows[1].startswith(
        "| 2 | main (baseline aaaaaaa) | lstm | net.hidden_size=256 | 5.000 |"
    )
    assert "[plots/index.html](plots/index.html)" in md


def test_a_missing_figure_is_a_dash():
    lone = entries_from_exp_show(
        [row("main", params("lstm", 256, 0), 5.0, 5.2, typ="baseline", seconds=None)], PARAM_KEYS
    )
    [line] = [x for x in leaderboard_markdown(lone).splitlines() if x.startswith("| 1 |")]
    assert line.endswith("| 1.300 | — |") and "| lstm | — |" in line


@pytest.mark.slow
def test_the_leaderboard_reads_a_real_repository_with_dvc_api(tmp_path):
    """A one-stage DVC repository, a baseline and one experiment, read through dvc.api."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "params.yaml").write_text("model: lstm\nnet:\n  hidden_size: 256\n")
    (root / "write_metrics.py").write_text(
        "import json, os, yaml\n"
        "h = yaml.safe_load(open('params.yaml'))['net']['hidden_size']\n"
        "os.makedirs('metrics', exist_ok=True)\n"
        "json.dump({'val': {'perplexity': 1000 / h}}, open('metrics/eval.json', 'w'))\n"
        "json.dump({'val': {'perplexity': 4.0}}, open('metrics/ngram.json', 'w'))\n"
    )
    (root / "dvc.yaml").write_text(
        "stages:\n  train:\n    cmd: python write_metrics.py\n    deps: [write_metrics.py]\n"
        "    params: [model, net.hidden_size]\n    metrics:\n"
        "      - metrics/eval.json: {cache: false}\n      - metrics/ngram.json: {cache: false}\n"
    )

    def run(*cmd):
        subprocess.run(
            cmd,
            cwd=root,
            check=True,
            capture_output=True,
            env={
                **os.environ,
                "PATH": f"{sys.prefix}/bin:{os.environ['PATH']}",
                "DVC_NO_ANALYTICS": "1",
                "GIT_AUTHOR_NAME": "t",
                "GIT_AUTHOR_EMAIL": "t@seqlm.invalid",
                "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@seqlm.invalid",
            },
        )

    run("git", "init", "-q", "-b", "main")
    run("dvc", "init", "-q")
    run("dvc", "repro", "-q")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "baseline")
    run("dvc", "exp", "run", "-q", "-n", "wide", "-S", "net.hidden_size=500")

    found = rank(load_entries(root))
    assert [(e.name, e.baseline) for e in found] == [("wide", False), ("main", True)]
    assert found[0].metric("metrics/eval.json", "val.perplexity") == 2.0
    assert found[0].key_params == {"model": "lstm", "net.hidden_size": 500.0}
    assert len(found[1].rev) == 7
