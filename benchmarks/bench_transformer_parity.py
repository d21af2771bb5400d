"""The Transformer at the reference's level: seqlm's ``nanogpt_cpu`` recipe beside nanoGPT's figures.

Run by hand (not a test). Trains seqlm's :class:`~seqlm.neural.models.transformer.TransformerLM`
on the ``shakespeare`` preset's split (lines 90/5/5, ``clean: none``, character level,
``newline``) with a recipe (default ``conf/recipe/nanogpt_cpu.yaml``: nanoGPT's published CPU
configuration, every hyperparameter in seqlm's keys), twice:

* ``steps``: for ``--steps`` optimizer steps (default 2,000, the configuration's ``max_iters``),
  the cosine over them, validated once at the last step;
* ``minutes``: for a wall-clock budget (``--minutes``, default the preset's 8), the cosine following
  the clock (``train.max_steps`` 0, ``train.epochs`` 100: the time runs out first), validated at
  every epoch's end, the best epoch's weights kept — exactly what ``dvc exp run -S
  dataset=shakespeare -S recipe=nanogpt_cpu -S train.max_steps=0 -S train.epochs=100`` trains.

Each run is scored on val and test by seqlm's convention (:func:`seqlm.neural.evaluation.score`:
every target once, windows of the context advanced by half of it; nats per character = ln
perplexity) and printed beside the reference: nanoGPT's own model code trained in the same
configuration on the same split for the same steps or minutes on this 2-core CPU, scored by the same
convention (:data:`REFERENCE`), and nanoGPT's published ~1.88 (its own split
and estimate) for the 2,000 steps. ``--set key=value`` lays any params key over the recipe (a
candidate: ``--set net.positions=rotary``); the targets are then still printed, against the same
references.

How seqlm's model and loop compare with nanoGPT's GPT (:data:`SAME` and :data:`KEPT`, printed):
the recipe matches every setting nanoGPT's model and optimiser have, and the differences kept are
those of seqlm's data conventions, each harmless for the comparison (said why).

Usage (from the repository root)::

    python benchmarks/bench_transformer_parity.py                     # both runs (~11 minutes)
    python benchmarks/bench_transformer_parity.py --runs steps        # 2,000 steps (~2 minutes)
    python benchmarks/bench_transformer_parity.py --runs minutes --set net.positions=rotary
    SEQLM_MIRROR=/path/to/data python benchmarks/bench_transformer_parity.py --threads 2
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ptb  # noqa: E402  (a sibling benchmark, not a package: conf/ composition, the data)


@dataclass(frozen=True)
class Reference:
    """nanoGPT's own code in the same configuration on seqlm's split, scored by seqlm."""

    val: float
    test: float
    tokens_per_second: float | None
    what: str


REFERENCE = {
    "steps": Reference(1.8423, 1.8970, None, "nanoGPT's code, 2,000 steps"),
    "minutes": Reference(1.4551, 1.6196, 16_300.0, "nanoGPT's code, 8 minutes"),
}
PUBLISHED_STEPS = "~1.88 (nanoGPT's README: its 90/10 split, estimated on random windows)"


@dataclass(frozen=True)
class Lstm:
    """seqlm's default LSTM on a preset: val and test nats, minutes of training, the command."""

    val: float
    test: float
    minutes: float
    source: str


LSTM = {
    "shakespeare": Lstm(1.4045, 1.5705, 8.0, "dvc exp run -S dataset=shakespeare (issue #21)"),
    # ln of the committed baseline's val 3.4693 / test 3.6739 perplexity (README, `make gate`)
    "timemachine": Lstm(1.24395, 1.30125, 7.8, "dvc repro, metrics/eval.json"),
}
NANOGPT_PARAMETERS = 4 * 12 * 128 * 128 + 65 * 128 + 64 * 128 + (2 * 4 + 1) * 128  # 804,096
"""nanoGPT's parameters in this configuration: 4 blocks of 12 H² (attention 4 H², MLP 8 H², no
biases), a 65 × 128 token table tied to the output, 64 × 128 positions, 9 LayerNorm weights."""

TARGETS = {
    "steps": "val within 1 % of the reference",
    "minutes": "val <= the reference and >= 16,000 tokens/s",
}

SAME = (
    "pre-norm blocks (LayerNorm before attention and before the MLP, one after the last block)",
    "a 4x GELU MLP (erf GELU), causal scaled-dot-product attention, LayerNorm eps 1e-5",
    "learned absolute positions over the context; training windows as long as the context",
    "token embedding tied to the output layer",
    "no biases anywhere (net.bias: false), the output layer included",
    "GPT-2's initialisation: normal(0, 0.02), residual projections 0.02 / sqrt(2 L)",
    "AdamW lr 1e-3, betas (0.9, 0.99) (train.beta2), weight decay 0.1 on tensors of >= 2 "
    "dimensions (matrices, embeddings), none on LayerNorm weights",
    "gradient norm clipped at 1, 100 linear warm-up steps, a cosine to min_lr 1e-4",
    "batch 12 x 64, dropout 0, float32",
)
KEPT = (
    "batches: nanoGPT draws each window at a uniformly random offset, with replacement; seqlm "
    "cuts the train stream after a random offset into windows and shuffles them, each once an "
    "epoch (the sampler the recurrent models share; the same 12 x 64 targets a step)",
    "vocabulary: nanoGPT 65 characters; seqlm 67 (<unk>, <bos>: its vocabulary convention) and "
    "the train stream starts with <bos> (256 parameters more, two rows never a target)",
    "warm-up: nanoGPT lr * it / W over max_iters + 1 steps; seqlm lr * (s + 1) / W over exactly "
    "the steps (one step's difference)",
    "minutes: seqlm's budget counts its validations (every epoch's end) as training time",
)


def run_params(
    recipe: str, dataset: str, overrides: dict[str, Any], run: str, args: argparse.Namespace
) -> dict[str, Any]:
    """The params of one run: the recipe on the preset, ``--set``, then the run's own keys."""
    params = bench_ptb.merge(bench_ptb.composed(dataset, recipe), overrides)
    train = dict(params["train"], threads=args.threads)
    if args.seed is not None:
        train["seed"] = args.seed
    if run == "steps":
        train.update(max_steps=args.steps, eval_every=args.steps, budget_minutes=0.0, epochs=1000)
    else:
        train.update(max_steps=0, eval_every=0, budget_minutes=args.minutes, epochs=100)
    return dict(params, train=train)


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``section.key=value`` items (values read as YAML) → a nested mapping."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise SystemExit(f"--set {item!r}: expected section.key=value, e.g. net.heads=8")
        section, name = key.split(".", 1)
        out.setdefault(section, {})[name] = yaml.safe_load(value)
    return out


@dataclass
class Result:
    """One run's figures."""

    run: str
    parameters: int
    steps: int
    train_minutes: float
    tokens_per_second: float
    val: float
    test: float


def train_and_score(params: dict[str, Any], data, workdir: Path, run: str) -> Result:
    """Train ``params``'s model on the data and score its kept checkpoint on val and test."""
    import torch

    from seqlm.neural.checkpoint import load_checkpoint
    from seqlm.neural.evaluation import score
    from seqlm.neural.loop import train
    from seqlm.params import NetParams, TrainParams, build

    model_name = params["model"]
    net = build(NetParams, "net", params["net"])
    train_params = build(TrainParams, "train", params["train"])
    ckpt = workdir / f"{run}.pt"

    def on_evaluation(e) -> None:  # a learning curve in nats, as the run goes
        print(
            f"    step {e.step:,} ({e.elapsed / 60:.1f} min): train {math.log(e.train_perplexity):.4f}"
            f" (dropout on), val {math.log(e.val_perplexity):.4f} nats, lr {e.lr:.2e}",
            flush=True,
        )

    result = train(
        model_name,
        net,
        train_params,
        data.vocab,
        data.splits["train"],
        data.splits["val"],
        checkpoint_path=ckpt,
        on_evaluation=on_evaluation,
    )
    model, _ = load_checkpoint(
        ckpt, data.vocab, model_name=model_name, net=net, device=str(result.device)
    )
    bos = data.vocab.id_of("<bos>")
    with torch.no_grad():
        scores = {s: score(model, data.splits[s], bos)[0] for s in ("val", "test")}
    ckpt.unlink(missing_ok=True)
    return Result(
        run=run,
        parameters=result.parameters,
        steps=result.steps,
        train_minutes=result.train_seconds / 60,
        tokens_per_second=result.tokens_per_second,
        val=scores["val"].nll / scores["val"].tokens,
        test=scores["test"].nll / scores["test"].tokens,
    )


def verdict(r: Result) -> str:
    """The run's target against its reference, met or not, with the margin."""
    ref = REFERENCE[r.run]
    gap = 100 * (r.val / ref.val - 1)
    if r.run == "steps":
        return f"{'met' if abs(gap) <= 1 else 'NOT met'} ({gap:+.2f} % on val)"
    fast = r.tokens_per_second >= 16_000
    met = r.val <= ref.val and fast
    return (
        f"{'met' if met else 'NOT met'} (val {gap:+.2f} %, {r.tokens_per_second:,.0f} tokens/s "
        f"{'>=' if fast else '<'} 16,000)"
    )


def table(results: list[Result], label: str, dataset: str) -> str:
    """The markdown table of the runs beside the references (nanoGPT's: Tiny Shakespeare only)."""
    head = [
        "run",
        "parameters",
        "steps",
        "train min",
        "tokens/s",
        "val nats",
        "test nats",
        "reference val / test (tokens/s)",
        "target",
    ]
    rows = []
    for r in results:
        ref = REFERENCE[r.run]
        speed = f" ({ref.tokens_per_second:,.0f})" if ref.tokens_per_second else ""
        against = f"{ref.val:.4f} / {ref.test:.4f}{speed}"
        if dataset != "shakespeare":
            against = "— (nanoGPT's figures are Tiny Shakespeare's)"
        cells = [
            f"{label}, {r.run}",
            f"{r.parameters:,} (nanoGPT {NANOGPT_PARAMETERS:,})",
            f"{r.steps:,}",
            f"{r.train_minutes:.2f}",
            f"{r.tokens_per_second:,.0f}",
            f"{r.val:.4f}",
            f"{r.test:.4f}",
            against,
            verdict(r) if dataset == "shakespeare" else "—",
        ]
        rows.append(cells)
    return bench_ptb.markdown_table(head, rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs="+", choices=("steps", "minutes"), default=["steps", "minutes"])
    ap.add_argument("--recipe", default="nanogpt_cpu", help="a conf/recipe/ name")
    ap.add_argument("--dataset", default="shakespeare", help="a conf/dataset/ preset")
    ap.add_argument("--steps", type=int, default=2000, help="the steps run's optimizer steps")
    ap.add_argument("--minutes", type=float, default=8.0, help="the minutes run's budget")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="params overrides")
    ap.add_argument("--threads", type=int, default=0, help="train.threads (0: seqlm's default)")
    ap.add_argument("--seed", type=int, default=None, help="train.seed (default: the recipe's)")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.minutes <= 0:
        ap.error("--steps must be >= 1 and --minutes > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("SEQLM_NO_PROGRESS", "1")
    import torch

    overrides = parse_set(args.set)
    started = time.perf_counter()
    data = bench_ptb.preset_data(args.dataset)
    tokens = ", ".join(f"{s} {d.ids.size:,}" for s, d in data.splits.items())
    label = args.recipe + "".join(f" {item}" for item in args.set)
    print(
        f"{args.dataset} (vocabulary {len(data.vocab)}, tokens {tokens}); recipe {label}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in args.runs:
            params = run_params(args.recipe, args.dataset, overrides, run, args)
            budget = f"{args.steps:,} steps" if run == "steps" else f"{args.minutes:g} minutes"
            print(f"{run}: {budget} ...", flush=True)
            r = train_and_score(params, data, Path(tmp), run)
            print(
                f"  val {r.val:.4f} / test {r.test:.4f} nats, {r.steps:,} steps in "
                f"{r.train_minutes:.2f} min, {r.tokens_per_second:,.0f} tokens/s",
                flush=True,
            )
            results.append(r)
    print(
        "\nseqlm's Transformer beside nanoGPT's own code in the same configuration on the same "
        "split, scored by seqlm's convention (nats per character)"
    )
    print(table(results, label, args.dataset))
    if "steps" in args.runs and args.dataset == "shakespeare":
        print(f"\nnanoGPT's published figure for the 2,000 steps: {PUBLISHED_STEPS}")
    lstm = LSTM.get(args.dataset)
    for r in results:
        if r.run == "minutes" and lstm is not None:
            print(
                f"seqlm's LSTM on {args.dataset} in {lstm.minutes:g} minutes ({lstm.source}): val "
                f"{lstm.val:.4f} / test {lstm.test:.4f}; this run's val "
                f"{100 * (r.val / lstm.val - 1):+.2f} %, perplexity "
                f"{100 * (math.exp(r.val - lstm.val) - 1):+.2f} %"
            )
    print("\nthe same as nanoGPT's GPT (the nanogpt_cpu recipe):")
    for line in SAME:
        print(f"  - {line}")
    print("differences kept, and why:")
    for line in KEPT:
        print(f"  - {line}")
    print(f"\nwall time {(time.perf_counter() - started) / 60:.1f} minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
