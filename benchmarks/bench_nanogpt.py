"""nanoGPT's two Shakespeare-char configurations, trained as seqlm's Transformer on seqlm's split.

Run by hand (not a test). nanoGPT (karpathy/nanoGPT) publishes a character-level validation loss
on Tiny Shakespeare in nats: 1.4697 for ``config/train_shakespeare_char.py`` (its GPU config) and
"~1.88" for the CPU variant its README gives (the same config with ``--block_size=64
--batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000
--dropout=0.0``). This benchmark trains seqlm's own :class:`~seqlm.neural.models.transformer.
TransformerLM` in each configuration (``--configs``) on the ``shakespeare`` preset's split and
scores it by seqlm's convention, so the peer's recipe and seqlm's are measured on the same text.

Data: ``$SEQLM_MIRROR/tinyshakespeare/input.txt`` (default ``../shared/data`` beside the
repository), built in memory by :func:`seqlm.data.corpus.prepare_text` from the data sections of
``conf/config.yaml`` with ``conf/dataset/shakespeare.yaml`` laid over them (as ``dataset=
shakespeare`` composes them): ``clean: none``, character level, a ``"\\n"`` token after every
line, cut 90/5/5 by line, every train character in the vocabulary (65, plus ``<unk>`` and
``<bos>``).

Training: :func:`seqlm.neural.loop.train` for exactly the configuration's steps (``max_steps``),
validated once, at the last step (``eval_every`` = the steps), so evaluation does not eat the
training time; the model of that last step is scored. Scoring: :func:`seqlm.neural.evaluation.
score` on val and on test, each from a fresh ``<bos>``, every target once (windows of the
context advanced by half of it). Printed per configuration: val and test nats per character
(nll / tokens = ln perplexity), the val+test pool (the last tenth of the text, the region nanoGPT
validates on: ``(nll_val + nll_test) / (tokens_val + tokens_test)``), training minutes (the
optimizer steps' time, from the loop's tokens/s; the one validation excluded), steps and steps/s,
the parameters, and nanoGPT's published figure beside them.

How each nanoGPT setting maps onto seqlm's ``net`` / ``train`` (exact unless said):

* ``n_layer``, ``n_head``, ``n_embd`` → ``net.num_layers``, ``net.heads``, ``net.hidden_size`` =
  ``net.embedding_size`` (no projection); pre-norm blocks, a 4x GELU MLP, a final LayerNorm, GPT-2's
  initialisation (normal 0.02, residual projections 0.02 / sqrt(2 L)): the same in both;
* ``block_size`` → ``net.context`` = ``train.num_steps`` (training windows as long as the context);
  learned absolute positions → ``net.positions: learned``;
* weight tying (``wte`` = ``lm_head``) → ``net.tie_weights: true``;
* ``bias = False`` (``train.py``'s: no bias in any Linear or LayerNorm) → ``net.bias: false``;
* ``dropout`` → ``net.dropout`` (each block's attention and MLP outputs) and ``net.input_dropout``
  (the embeddings plus positions) with ``net.locked: false`` (plain dropout, as nanoGPT's);
  ``embedding_dropout``, ``output_dropout``, ``weight_drop`` 0;
* ``batch_size`` → ``train.batch_size``; ``gradient_accumulation_steps`` 1 (seqlm has none);
* AdamW, ``learning_rate`` 1e-3, ``beta2`` 0.99 → ``train.optimizer: adamw``, ``train.lr``,
  ``train.beta2``; ``weight_decay`` 0.1 on
  the matrices and embeddings only (tensors of 2 or more dimensions), not on biases and LayerNorms:
  seqlm's AdamW splits the parameters by the same rule;
* ``grad_clip`` 1.0 → ``train.clip``;
* ``warmup_iters`` 100, cosine decay to ``min_lr`` 1e-4 at ``lr_decay_iters`` = ``max_iters`` →
  ``train.warmup_steps``, ``train.schedule: cosine``, ``train.min_lr``, ``train.max_steps`` (the
  cosine's horizon is ``max_steps``: ``train.epochs`` is set to enough epochs to hold them). The
  cosine is nanoGPT's formula, ``min_lr + ½ (1 + cos π r) (lr − min_lr)``, ``r = (it − W) / (N − W)``;
* random windows → ``train.sampling: random`` (nearest: see below);
* the CPU config runs in float32 on the CPU as nanoGPT's does; on ``--device cuda`` training uses
  ``train.precision: bf16`` (nanoGPT's ``dtype`` on a GPU with bf16), ``--precision`` to change it.

What seqlm cannot express exactly (nearest used; also printed):

* attention dropout: nanoGPT also drops the attention probabilities (``attn_dropout``); seqlm drops
  only the blocks' outputs and the embeddings (the GPU config only: the CPU config's dropout is 0);
* batches: nanoGPT draws each window at a uniformly random offset, with replacement; seqlm's random
  sampling cuts the train stream (after a random offset) into non-overlapping windows and shuffles
  them, each window once an epoch;
* warm-up and steps: nanoGPT's warm-up is ``lr · it / W`` (``lr · (it + 1) / (W + 1)`` in later
  versions) and its loop makes ``max_iters + 1`` optimizer steps; seqlm's is ``lr · (s + 1) / W``
  over exactly ``max_steps`` steps: at most one step's difference;
* vocabulary: nanoGPT's 65 characters; seqlm's 67 (``<unk>``, ``<bos>``), the train stream preceded
  by one ``<bos>``;
* GPU arithmetic: nanoGPT enables TF32 and ``torch.compile``; seqlm does neither and asks for
  deterministic kernels (speed, not the model).

What differs in the measurement (not the model): nanoGPT cuts the text 90/10 by character and
estimates its val loss on ``eval_iters`` random windows (200; 20 in the README's CPU command), every
position of each window (contexts 0 .. C − 1 averaged), every 250 steps, keeping the best; here
val+test is the last tenth cut by line, every target is scored once with at least C/2 characters of
context (so a model scores a little lower here than by nanoGPT's estimate), and the last step's
model is scored (no selection on val).

Seeds: ``--seed`` (default 1337, nanoGPT's) seeds Python, numpy and torch, and is ``train.seed``
(weights, dropout, batch order; :func:`seqlm.neural.precision.seed_everything`): on a CPU a run
repeats bit for bit.

Usage (from the repository root)::

    python benchmarks/bench_nanogpt.py                          # the CPU config, 2,000 steps
    python benchmarks/bench_nanogpt.py --configs cpu gpu --device cuda
    python benchmarks/bench_nanogpt.py --configs cpu --steps 20  # plumbing (a quick check)
    SEQLM_MIRROR=/path/to/data python benchmarks/bench_nanogpt.py --threads 2

``--steps N`` replaces ``max_iters`` and ``lr_decay_iters`` by N (the warm-up stays 100 steps).
On a CPU that another job keeps busy, ``--threads 1`` can be several times faster than torch's
default (measured on this 2-core machine beside a running benchmark: 14 steps/s against 0.9 for the
CPU config); on an idle machine try the default.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ptb  # noqa: E402  (a sibling benchmark, not a package: its conf/ composition)

CORPUS = "tinyshakespeare/input.txt"
DATA_SECTIONS = ("clean", "tokenize", "vocab")


@dataclass(frozen=True)
class NanoConfig:
    """One of nanoGPT's Shakespeare-char configurations, in nanoGPT's own terms."""

    name: str
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    batch_size: int
    max_iters: int  # = lr_decay_iters
    dropout: float
    published: str  # nanoGPT's published val loss (nats per character)
    source: str
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    weight_decay: float = 0.1
    beta2: float = 0.99
    grad_clip: float = 1.0


CONFIGS = {
    "cpu": NanoConfig(
        name="cpu",
        n_layer=4,
        n_head=4,
        n_embd=128,
        block_size=64,
        batch_size=12,
        max_iters=2000,
        dropout=0.0,
        published="~1.88",
        source="README's CPU command (train_shakespeare_char.py, 4x4x128, context 64, batch 12)",
    ),
    "gpu": NanoConfig(
        name="gpu",
        n_layer=6,
        n_head=6,
        n_embd=384,
        block_size=256,
        batch_size=64,
        max_iters=5000,
        dropout=0.2,
        published="1.4697",
        source="config/train_shakespeare_char.py (6x6x384, context 256, batch 64)",
    ),
}


def preset_data_params():  # -> (CleanParams, TokenizeParams, VocabParams)
    """The data sections ``dataset=shakespeare`` composes: ``conf/config.yaml``'s, with
    ``conf/dataset/shakespeare.yaml`` laid over them."""
    from seqlm.params import CleanParams, TokenizeParams, VocabParams, build

    params = bench_ptb.composed("shakespeare")
    return (
        build(CleanParams, "clean", params["clean"]),
        build(TokenizeParams, "tokenize", params["tokenize"]),
        build(VocabParams, "vocab", params["vocab"]),
    )


def net_params(cfg: NanoConfig):  # -> NetParams
    """nanoGPT's model in seqlm's ``net`` (module docstring)."""
    from seqlm.params import NetParams, check_net_for_model

    net = NetParams(
        embedding_size=cfg.n_embd,
        hidden_size=cfg.n_embd,
        num_layers=cfg.n_layer,
        heads=cfg.n_head,
        context=cfg.block_size,
        positions="learned",
        dropout=cfg.dropout,
        input_dropout=cfg.dropout,
        embedding_dropout=0.0,
        output_dropout=0.0,
        weight_drop=0.0,
        locked=False,
        tie_weights=True,
        output="softmax",
        init_range=0.0,
        bias=False,
    )
    check_net_for_model("transformer", net)
    return net


def train_params(cfg: NanoConfig, steps: int, train_tokens: int, args: argparse.Namespace):
    """nanoGPT's optimisation in seqlm's ``train`` (module docstring): exactly ``steps`` optimizer
    steps, the cosine over them, one validation at the last; with the epochs that hold them."""
    from seqlm.neural.batching import lm_batches_per_epoch
    from seqlm.params import TrainParams

    params = TrainParams(
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        threads=args.threads,
        batch_size=cfg.batch_size,
        num_steps=cfg.block_size,
        sampling="random",
        optimizer="adamw",
        lr=cfg.learning_rate,
        beta2=cfg.beta2,
        weight_decay=cfg.weight_decay,
        clip=cfg.grad_clip,
        schedule="cosine",
        warmup_steps=cfg.warmup_iters,
        min_lr=cfg.min_lr,
        epochs=1,
        patience=0,
        budget_minutes=0.0,
        average=0.0,
        max_steps=steps,
        eval_every=steps,
    )
    per_epoch = lm_batches_per_epoch(train_tokens + 1, params)  # the stream starts with <bos>
    if per_epoch < 1:
        raise SystemExit(f"the train split is too short for one batch of {cfg.name}")
    # one epoch more than the steps need: an epoch's random offset may cost it a batch
    return params.replace(epochs=math.ceil(steps / per_epoch) + 1), per_epoch


def differences(cfg: NanoConfig) -> list[str]:
    """What this configuration's run does differently from nanoGPT's (module docstring)."""
    out = [
        "batches: nanoGPT draws windows at random offsets with replacement; seqlm shuffles "
        "non-overlapping windows (after a random offset), each once an epoch",
        "warm-up and steps: nanoGPT lr*it/W (later lr*(it+1)/(W+1)) over max_iters + 1 steps; "
        "seqlm lr*(s+1)/W over exactly max_steps",
        "vocabulary: nanoGPT 65 characters; seqlm 67 (<unk>, <bos>), streams start with <bos>",
    ]
    if cfg.dropout:
        out.insert(
            0,
            f"attention dropout: nanoGPT also drops attention probabilities ({cfg.dropout}); "
            "seqlm drops block outputs and embeddings only",
        )
    return out


MEASUREMENT = (
    "nanoGPT cuts 90/10 by character and estimates val on random windows (contexts "
    "0..C-1 averaged, best of evaluations every 250 steps); here val+test is the last tenth cut "
    "by line, each target scored once with >= C/2 context, the last step's model"
)


@dataclass
class Result:
    """One configuration's run."""

    cfg: NanoConfig
    steps: int
    epochs: float
    parameters: int
    train_minutes: float
    score_minutes: float
    scores: dict[str, Any]  # split -> SplitScore

    def nats(self, split: str) -> float:
        s = self.scores[split]
        return s.nll / s.tokens

    @property
    def pooled(self) -> float:
        v, t = self.scores["val"], self.scores["test"]
        return (v.nll + t.nll) / (v.tokens + t.tokens)

    @property
    def steps_per_second(self) -> float:
        return self.steps / max(self.train_minutes * 60, 1e-9)


def run_config(cfg: NanoConfig, data, args: argparse.Namespace, workdir: Path, log) -> Result:
    """Train seqlm's Transformer in ``cfg`` on the data and score its last step on val and test."""
    import torch

    from seqlm.neural.checkpoint import load_checkpoint
    from seqlm.neural.evaluation import score
    from seqlm.neural.loop import train

    steps = args.steps or cfg.max_iters
    net = net_params(cfg)
    params, per_epoch = train_params(cfg, steps, int(data.splits["train"].ids.size), args)
    log(
        f"{cfg.name}: {cfg.source}; {steps} steps of {cfg.batch_size} x {cfg.block_size} "
        f"({steps / per_epoch:.2f} epochs of {per_epoch} batches), device {params.device}, "
        f"precision {params.precision}"
    )
    seed_all(args.seed)
    ckpt = workdir / f"{cfg.name}.pt"
    result = train(
        "transformer",
        net,
        params,
        data.vocab,
        data.splits["train"],
        data.splits["val"],
        checkpoint_path=ckpt,
    )
    if result.steps != steps:
        log(f"  warning: trained {result.steps} steps, not {steps} (stopped by {result.stopped})")
    # the optimizer steps' time: the targets trained over the loop's training tokens/s
    trained_targets = result.steps * cfg.batch_size * cfg.block_size
    train_minutes = trained_targets / max(result.tokens_per_second, 1e-9) / 60
    started = time.perf_counter()
    model, _ = load_checkpoint(
        ckpt, data.vocab, model_name="transformer", net=net, device=str(result.device)
    )
    bos = data.vocab.id_of("<bos>")
    with torch.no_grad():
        scores = {s: score(model, data.splits[s], bos)[0] for s in ("val", "test")}
    ckpt.unlink(missing_ok=True)
    out = Result(
        cfg=cfg,
        steps=result.steps,
        epochs=result.steps / per_epoch,
        parameters=result.parameters,
        train_minutes=train_minutes,
        score_minutes=(time.perf_counter() - started) / 60,
        scores=scores,
    )
    log(
        f"  val {out.nats('val'):.4f} / test {out.nats('test'):.4f} / val+test {out.pooled:.4f} "
        f"nats per character; {out.parameters:,} parameters; {out.train_minutes:.2f} min "
        f"training ({out.steps_per_second:.2f} steps/s), {out.score_minutes:.2f} min scoring"
    )
    return out


def table(results: list[Result]) -> str:
    """The markdown table of every configuration's figures beside nanoGPT's."""
    head = [
        "config",
        "parameters",
        "steps",
        "epochs",
        "train min",
        "steps/s",
        "val nats",
        "test nats",
        "val+test nats",
        "nanoGPT val (published)",
    ]
    rows = []
    for r in results:
        cells = [
            f"{r.cfg.name} ({r.cfg.n_layer}x{r.cfg.n_head}x{r.cfg.n_embd}, C {r.cfg.block_size})",
            f"{r.parameters:,}",
            str(r.steps),
            f"{r.epochs:.2f}",
            f"{r.train_minutes:.2f}",
            f"{r.steps_per_second:.2f}",
            f"{r.nats('val'):.4f}",
            f"{r.nats('test'):.4f}",
            f"{r.pooled:.4f}",
            r.cfg.published,
        ]
        rows.append(cells)
    return bench_ptb.markdown_table(head, rows)


def seed_all(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators (``train`` seeds torch again)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=["cpu"])
    ap.add_argument(
        "--steps",
        type=int,
        default=0,
        help="optimizer steps instead of the config's max_iters (and lr_decay_iters): a quick check",
    )
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="train.device")
    ap.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="train.precision (auto: bf16 on cuda as nanoGPT's dtype, fp32 on the CPU)",
    )
    ap.add_argument("--threads", type=int, default=0, help="train.threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=1337, help="train.seed (nanoGPT's 1337)")
    args = ap.parse_args(argv)
    if args.steps < 0:
        ap.error("--steps must be >= 0")
    if args.precision == "auto":
        args.precision = "bf16" if args.device == "cuda" else "fp32"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("SEQLM_NO_PROGRESS", "1")
    import torch

    from seqlm.data.corpus import prepare_text

    path = bench_ptb.mirror() / CORPUS
    if not path.is_file():
        print(f"{path} does not exist: set SEQLM_MIRROR to the folder of the data", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: torch sees no GPU", file=sys.stderr)
        return 2
    text = path.read_bytes()
    clean, tokenize, vocab = preset_data_params()
    started = time.perf_counter()
    data = prepare_text(text, tokenize, vocab, clean)
    tokens = {s: int(d.ids.size) for s, d in data.splits.items()}
    print(
        f"Tiny Shakespeare ({path}, {len(text):,} bytes; the shakespeare preset: clean "
        f"{clean.mode}, {tokenize.token} level, line_end {tokenize.line_end}, "
        f"{tokenize.train_fraction:g}/{tokenize.val_fraction:g}/{tokenize.test_fraction:g} by "
        f"line); vocabulary {len(data.vocab)}, tokens "
        + ", ".join(f"{s} {n:,}" for s, n in tokens.items())
        + f" ({time.perf_counter() - started:.1f} s); seed {args.seed}, torch {torch.__version__}",
        flush=True,
    )

    def log(line: str) -> None:
        print(line, flush=True)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            results.append(run_config(CONFIGS[name], data, args, Path(tmp), log))
    print()
    print(
        "seqlm's Transformer in nanoGPT's Shakespeare-char configurations, scored by the "
        "convention (nats per character = ln perplexity; val+test = the last tenth of the text, "
        "nanoGPT's validation region)"
        + (f"; --steps {args.steps}: not the published step counts" if args.steps else "")
    )
    print(table(results))
    print("\nexact: layers, heads, width, context = training window, learned positions, pre-norm,")
    print(
        "GELU MLP 4x, tied embedding/output, no biases, GPT-2 init, dropout on embeddings and "
        "block outputs,"
    )
    print(
        "AdamW lr and betas, weight decay on >= 2-D tensors only, clip 1.0, warm-up 100, cosine "
        "to min_lr."
    )
    for r in results:
        print(f"\ndifferences from nanoGPT ({r.cfg.name}):")
        for line in differences(r.cfg):
            print(f"  - {line}")
    print(f"\nand in the measurement (every config): {MEASUREMENT}")
    print(f"\nwall time {(time.perf_counter() - started) / 60:.1f} minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
