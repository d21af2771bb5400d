"""The benchmarks still run (their figures are read by hand, not tested)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import yaml

from pipeline_support import TINY

REPO_ROOT = Path(__file__).resolve().parent.parent


def load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # where dataclasses look up a module's string annotations
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
    code = load_benchmark("bench_train").main(
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


def test_the_ptb_benchmark_composes_conf_as_hydra_does_for_every_dataset_and_recipe(tmp_path):
    from seqlm.ops.presets import compose_params, presets

    bench = load_benchmark("bench_ptb")
    conf = REPO_ROOT / "conf"
    for dataset in presets("dataset", conf):
        for recipe in [None, *presets("recipe", conf)]:
            overrides = [f"dataset={dataset}"] + ([f"recipe={recipe}"] if recipe else [])
            hydra = compose_params(overrides, tmp_path / "params.yaml", conf)
            assert bench.composed(dataset, recipe) == hydra, overrides


def test_the_gpu_check_runs_on_the_cpu_and_compares_with_its_cpu_reference(
    tmp_path: Path, tiny_text: str, capsys
) -> None:
    text = tmp_path / "text.txt"
    text.write_text(tiny_text * 10, encoding="utf-8")
    args = ["--device", "cpu", "--steps", "2", "--datasets", "timemachine", "--text", str(text)]
    code = load_benchmark("gpu_check").main([*args, "--precision", "fp32,fp16", "--threads", "1"])
    out = capsys.readouterr().out
    assert code == 0
    rows = re.findall(r"^timemachine\s+cpu\s+fp32\s+2\s+[\d,]+\s+-\s+([\d.]+)", out, re.M)
    assert len(rows) == 2 and rows[0] == rows[1]  # the run under test and the CPU reference
    assert "fp16 trains on CUDA only: skipped" in out
    assert "difference 0.00% (tolerance 2%): ok" in out


def test_the_scaling_benchmark_runs_every_stage_at_a_tiny_size(tmp_path: Path, capsys) -> None:
    code = load_benchmark("bench_scale").main(
        ["--sizes", "0.02", "--workdir", str(tmp_path / "runs"), "--keep"]
    )
    out = capsys.readouterr().out
    assert code == 0
    stages = re.findall(
        r"^(\w[\w ]*?)\s+0\.02\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\d+\s+[\d.]+", out, re.M
    )
    assert stages[:7] == [
        "download",
        "clean",
        "tokenize",
        "vocab",
        "corpus",
        "data stages",
        "ngram",
    ]
    assert re.search(r"^ngram .* \d+\.\d+x$", out, re.M)  # beside it: lmplz and our ratio
    assert re.search(r"^ngram 1 proc\s+0\.02\s", out, re.M)  # the stage again, one process
    assert re.search(r"^counting 1\s+0\.02\s", out, re.M)
    assert re.search(r"^counting \d+\s+0\.02\s.*speed-up of counting: \d+\.\d\dx$", out, re.M)
    run = tmp_path / "runs" / "0.02MB"
    metrics = json.loads((run / "metrics" / "ngram.json").read_text(encoding="utf-8"))
    assert metrics["order"] == 7 and metrics["test"]["perplexity"] > 1
    assert "dynamic" not in metrics  # the model lmplz estimates, not its dynamic evaluation too
    assert 20_000 <= (run / "source" / "train.txt").stat().st_size < 21_000


def test_the_roofline_counts_the_lstm_flops_the_issue_states_and_prints_every_row(capsys) -> None:
    bench = load_benchmark("bench_roofline")
    net = bench.family("lstm", 1).net  # the default: embedding 128, hidden 512, one layer
    # 3 x (2·4·512·(128 + 512) + 2·512·29): ~7.95 MFLOP a training token over 29 symbols
    assert bench.train_flops("lstm", net, 29, None) == 3 * (2 * 4 * 512 * 640 + 2 * 512 * 29)
    code = bench.main(
        ["--families", "lstm", "seq2seq", "transformer", "--steps", "3", "--warmup", "1"]
        + ["--repeats", "1", "--score-tokens", "300", "--dynamic-tokens", "128", "--threads", "1"]
    )
    out = capsys.readouterr().out
    assert code == 0 and re.search(r"GEMM peak after the runs: [\d.]+ GFLOP/s", out)
    final = out.split("The table against the higher peak")[1]
    rows = re.findall(r"^\| (\w+) \| ([^|]+) \|.*\*\*([\d.]+) %\*\* \|$", final, re.M)
    assert [(f, w.split(" (")[0]) for f, w, _ in rows] == [
        ("lstm", "training"),
        ("lstm", "scoring"),
        ("lstm", "dynamic evaluation"),
        ("seq2seq", "training"),
        ("seq2seq", "scoring"),
        ("transformer", "training"),
        ("transformer", "scoring"),
        ("transformer", "dynamic evaluation"),
    ]
    assert all(float(ratio) > 0 for _, _, ratio in rows)


def test_the_kenlm_comparison_spells_unk_as_a_plain_word_for_kenlm() -> None:
    bench = load_benchmark("bench_kenlm")
    names = ("<unk>", "<bos>", "<eos>", "the")
    line = bench.kenlm_line(np.array([3, 0, 2, 3], dtype=np.uint16), names)
    assert line == f"the {bench.UNK_AS} <eos> the"


def test_the_nanogpt_recipe_is_the_nanogpt_benchmarks_cpu_configuration() -> None:
    from seqlm.params import NetParams, TrainParams

    nano = load_benchmark("bench_nanogpt")
    params = load_benchmark("bench_ptb").composed("shakespeare", "nanogpt_cpu")
    cpu = nano.CONFIGS["cpu"]
    assert params["model"] == "transformer"
    assert NetParams(**params["net"]) == nano.net_params(cpu)
    recipe = TrainParams(**params["train"])
    mapped, _ = nano.train_params(cpu, cpu.max_iters, 1_016_242, nano.parse_args([]))
    for key in (
        "batch_size",
        "num_steps",
        "sampling",
        "optimizer",
        "lr",
        "beta2",
        "weight_decay",
        "clip",
        "schedule",
        "warmup_steps",
        "min_lr",
        "max_steps",
    ):
        assert getattr(recipe, key) == getattr(mapped, key), key


def test_the_parity_benchmark_runs_both_runs_and_judges_them_against_the_references(
    capsys,
) -> None:
    bench = load_benchmark("bench_transformer_parity")
    code = bench.main(["--steps", "3", "--minutes", "0.02", "--threads", "1"])
    out = capsys.readouterr().out
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("| nanogpt_cpu, ")]
    assert [row.split(",")[1].split("|")[0].strip() for row in rows] == ["steps", "minutes"]
    assert "| 3 |" in rows[0] and "NOT met" in rows[0]  # 3 steps are far from 1.8423
    assert "1.8423 / 1.8970" in rows[0] and "1.4551 / 1.6196 (16,300)" in rows[1]
    assert "804,352 (nanoGPT 804,096)" in rows[0]
    assert "differences kept, and why:" in out
    overrides = bench.parse_set(["net.positions=rotary", "train.lr=0.002"])
    assert overrides == {"net": {"positions": "rotary"}, "train": {"lr": 0.002}}


def test_the_parallel_benchmark_starts_trainings_side_by_side_and_prints_their_share(
    capsys,
) -> None:
    bench = load_benchmark("bench_parallel")
    assert bench.main(["--runs", "2", "--steps", "3", "--modes", "shared"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| shared |")]
    assert [row.split("|")[2].strip() for row in rows] == ["1", "2"]  # alone, then two at once
    assert rows[0].endswith("| 100.0 % |") and "(target >= 90 %)" in rows[1]
    assert len(rows[1].split("|")[3].split("+")) == 2  # each training's own tokens/s


def test_the_sharded_benchmark_runs_each_cap_and_finds_the_same_log_probabilities(capsys):
    code = load_benchmark("bench_sharded").main(["--dataset", "timemachine", "--caps", "2048,200"])
    assert code == 0
    rows = capsys.readouterr().out.splitlines()[-2:]
    whole, sharded = (row.split() for row in rows)
    assert whole[1:3] == ["-", "-"] and int(sharded[1]) > 1  # held whole, then in shards
    assert whole[4:6] == sharded[4:6] and whole[8] == sharded[8] == "True"
