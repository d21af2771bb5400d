"""The leaderboard, from `dvc exp show --json` output."""

from seqlm.ops.report import entries_from_exp_show, leaderboard_markdown, rank


def record(rev, params, val, test, ngram_test=4.0, seconds=120.0):
    return {
        "rev": rev,
        "data": {
            "rev": rev,
            "params": {"params.yaml": {"data": params}},
            "metrics": {
                "metrics/eval.json": {"data": {"val": {"perplexity": val, "bits_per_char": 1.9},
                                               "test": {"perplexity": test, "bits_per_char": 2.0},
                                               "interpolation": {"test": {"perplexity": test - 0.5}}}},
                "metrics/ngram.json": {"data": {"test": {"perplexity": ngram_test}}},
                "metrics/train.json": {"data": {"train_seconds": seconds}},
            },
        },
    }


EXP_SHOW = [
    {"rev": "workspace", "name": None, "data": {}, "experiments": None, "error": None},
    {
        **record("a" * 40, {"model": "lstm", "net": {"hidden_size": 256}, "generate": {"seed": 0}}, 5.0, 5.2),
        "name": "main",
        "error": None,
        "experiments": [
            {"name": "fast-gru", "executor": None,
             "revs": [{**record("b" * 40, {"model": "gru", "net": {"hidden_size": 256}, "generate": {"seed": 1}},
                                4.0, 4.4), "name": "fast-gru", "error": None}]},
            {"name": "still-queued", "executor": {"state": "queued", "name": "dvc-task"},
             "revs": [{**record("d" * 40, {"model": "gru", "net": {"hidden_size": 8}}, 5.0, 5.2),
                       "name": "still-queued", "error": None}]},
            {"name": "big-rnn", "executor": {"state": "success", "name": "dvc-task"},
             "revs": [{**record("c" * 40, {"model": "rnn", "net": {"hidden_size": 512}, "generate": {"seed": 0}},
                                6.0, 6.1), "name": "big-rnn", "error": None}]},
        ],
    },
]


def test_every_finished_experiment_becomes_an_entry_but_not_the_workspace_or_the_queue():
    entries = entries_from_exp_show(EXP_SHOW)
    assert [e.name for e in entries] == ["main", "fast-gru", "big-rnn"]
    assert [e.baseline for e in entries] == [True, False, False]


def test_key_params_are_the_model_and_what_differs_between_entries():
    entries = {e.name: e for e in entries_from_exp_show(EXP_SHOW)}
    assert entries["big-rnn"].key_params == {"model": "rnn", "net.hidden_size": 512}
    # generate.seed differs too, but sampling settings do not change what a model learns
    assert "generate.seed" not in entries["main"].key_params


def test_entries_are_ranked_by_val_perplexity():
    assert [e.name for e in rank(entries_from_exp_show(EXP_SHOW))] == ["fast-gru", "main", "big-rnn"]


def test_the_markdown_table_lists_figures_and_the_ratio_to_the_ngram():
    md = leaderboard_markdown(entries_from_exp_show(EXP_SHOW), plots_link="plots/index.html")
    rows = [line for line in md.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 3
    assert rows[0].startswith("| 1 | fast-gru (bbbbbbb) | gru | net.hidden_size=256 | 4.000 | 4.400 |")
    assert "| 1.100 | 2.0 |" in rows[0]  # 4.4 / 4.0, and 120 s = 2.0 minutes
    assert "main (baseline aaaaaaa)" in rows[1]
    assert "[plots/index.html](plots/index.html)" in md
