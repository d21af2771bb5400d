"""Tokenization compared on the same text and the same training minutes, in bits per byte.

Run by hand (not a test). One corpus (``--corpus``: The Time Machine or Tiny Shakespeare, read
offline from ``$SEQLM_MIRROR``, default ``../shared/data`` beside the repository) is cut 90/5/5 by
line as the presets cut it and taken as published (``clean: none``), then tokenized each way
(``--kinds``): ``char`` and the subword kinds (``bpe``, ``unigram``; SentencePiece trained on the
train split only, one run per size in ``--bpe-sizes``) with ``newline`` line ends, ``word`` with
``eos`` line ends (a word stream cannot hold a ``"\\n"`` token). Each tokenization's data are
built by :func:`seqlm.data.corpus.prepare_text` (what the data stages make of the same params),
and on it (``--models``):

* ``ngram``: interpolated modified Kneser-Ney, the order chosen on val among ``1..--max-order``
  (default 8 for characters, 5 otherwise) by the ngram stage's own search
  (:func:`seqlm.ngram.baseline.search_counted`);
* ``lstm``: ``conf/config.yaml``'s model, ``net`` and ``train`` (``NetParams()``, ``TrainParams()``);
* ``transformer``: the same composed with ``conf/recipe/transformer.yaml`` (``recipe=transformer``:
  3 pre-norm blocks of 192, 6 heads, rotary positions, context 128, its own AdamW settings);

each neural model trained with ``train.budget_minutes = --minutes`` (or, for figures that repeat
exactly, ``--steps`` optimizer steps and no budget), its best-val checkpoint scored by
:func:`seqlm.neural.evaluation.score`. Everything is scored by the convention
(:mod:`seqlm.perplexity`): each split from a fresh ``<bos>``, its nll over the UTF-8 bytes of its
running text, which is the same text for every tokenization with the same line ends (and ``<eos>``
counts as the line end it stands for), so the columns compare across rows.

The table: a row per tokenization (its vocabulary size), the tokens of train/val/test, the val and
test ``<unk>`` targets (word level only: an unseen word is one ``<unk>``, scored as a cheap,
pooled token, which flatters word-level bits per byte), the n-gram's order, val and test bits per
byte of each model, and the minutes each neural model trained (the budget's clock: training and its
per-epoch validation). Bits per character are printed as a second table unless the text is ASCII
(then they equal bits per byte, which is checked and said).

Seeds: ``train.seed`` (0, ``--seed``) seeds every run's weights, dropout and batches
(:func:`seqlm.neural.precision.seed_everything`, called by ``train``); SentencePiece and the
n-gram are deterministic. A time budget stops training after however many steps the machine managed
in it, so budget runs vary with the machine's load; ``--steps N`` trains exactly N steps and
repeats bit for bit on a CPU.

Usage (from the repository root)::

    python benchmarks/bench_tokenization.py --corpus timemachine          # 2 minutes a model
    python benchmarks/bench_tokenization.py --corpus shakespeare --minutes 8 --bpe-sizes 512 2048
    python benchmarks/bench_tokenization.py --kinds char bpe unigram --models ngram lstm
    SEQLM_MIRROR=/path/to/data python benchmarks/bench_tokenization.py --minutes 0.1   # plumbing

A full run with the defaults trains 8 models of 2 minutes (4 tokenizations x LSTM, Transformer):
about 20 minutes on The Time Machine and 25 on Tiny Shakespeare on a 2-core CPU, scoring included.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ptb  # noqa: E402  (a sibling benchmark, not a package: its conf/ composition)

CORPORA = {
    "timemachine": "timemachine.txt",
    "shakespeare": "tinyshakespeare/input.txt",
}
"""Each corpus's file under the mirror (one file, cut 90/5/5 by line as its preset cuts it)."""
KINDS = ("char", "word", "bpe", "unigram")
MODELS = ("ngram", "lstm", "transformer")
SPLITS = ("val", "test")


def composed(recipe: str | None = None) -> dict[str, Any]:
    """``conf/`` composed for ``recipe=...`` on the default dataset, as bench_ptb composes it (a
    test checks that is Hydra's); this benchmark sets the data sections itself."""
    return bench_ptb.composed("timemachine", recipe)


NEURAL_RECIPES = {"lstm": None, "transformer": "transformer"}
"""Each neural model's recipe: None is config.yaml's defaults (whose model is the LSTM)."""


@dataclass(frozen=True)
class Tokenization:
    """One row: a token kind, its subword vocabulary size (None for char and word)."""

    kind: str
    vocab_size: int | None = None

    @property
    def name(self) -> str:
        return self.kind if self.vocab_size is None else f"{self.kind} {self.vocab_size}"

    def params(self):  # -> TokenizeParams
        from seqlm.params import TokenizeParams

        line_end = "eos" if self.kind == "word" else "newline"
        return TokenizeParams(token=self.kind, line_end=line_end, vocab_size=self.vocab_size)


@dataclass
class ModelResult:
    """One model's scores on val and test (SplitScore), and how it got them."""

    scores: dict[str, Any]
    minutes: float | None = None  # training minutes (neural models)
    order: int | None = None  # the n-gram's order
    steps: int | None = None  # optimizer steps (neural models)
    stopped: str = ""


@dataclass
class Row:
    """One tokenization's data and models."""

    tok: Tokenization
    vocab: int
    tokens: dict[str, int]
    oov: dict[str, int]
    prepare_seconds: float
    models: dict[str, ModelResult] = field(default_factory=dict)


def ngram_result(data, max_order: int) -> ModelResult:
    """Kneser-Ney, the order searched on val as the ngram stage searches it, on val and test."""
    from seqlm.ngram import fit_ngram
    from seqlm.ngram.baseline import count_train, search_counted
    from seqlm.params import NgramParams
    from seqlm.perplexity import score_model

    params = NgramParams(order="auto", max_order=max_order, smoothing="kneser_ney")
    counts = count_train(params, data.splits["train"], data.vocab)
    order, _ = search_counted(params, counts, data.splits["val"])
    model = fit_ngram(counts, order, params.smoothing)
    scores = {s: score_model(model.target_logprobs, data.splits[s])[0] for s in SPLITS}
    return ModelResult(scores=scores, order=order)


def neural_params(model: str, args: argparse.Namespace):  # -> (model name, NetParams, TrainParams)
    """The model's composed ``net`` and ``train``, with the budget (or fixed steps), the seed,
    the device and the threads of this run."""
    from seqlm.params import NetParams, TrainParams, check_net_for_model

    p = composed(NEURAL_RECIPES[model])
    name = p["model"]
    if name != model:
        raise SystemExit(f"the {model} recipe composes model = {name!r}, not {model!r}")
    net, train = NetParams(**p["net"]), TrainParams(**p["train"])
    budget = {"budget_minutes": 0.0, "max_steps": args.steps} if args.steps else {}
    train = train.replace(
        **{"budget_minutes": args.minutes, "max_steps": 0, **budget},
        seed=args.seed,
        device=args.device,
        threads=args.threads,
    )
    check_net_for_model(name, net)
    return name, net, train


def neural_result(model: str, data, args: argparse.Namespace, workdir: Path) -> ModelResult:
    """Train ``model`` on the data (the budget, or ``--steps``), then score its best-val
    checkpoint on val and test."""
    import torch

    from seqlm.neural.checkpoint import load_checkpoint
    from seqlm.neural.evaluation import score
    from seqlm.neural.loop import train

    name, net, params = neural_params(model, args)
    torch.manual_seed(params.seed)  # train() seeds again (seed_everything) before building
    ckpt = workdir / f"{model}.pt"
    result = train(
        name,
        net,
        params,
        data.vocab,
        data.splits["train"],
        data.splits["val"],
        checkpoint_path=ckpt,
    )
    device = str(result.device)
    trained, _ = load_checkpoint(ckpt, data.vocab, model_name=name, net=net, device=device)
    bos = data.vocab.id_of("<bos>")
    scores = {s: score(trained, data.splits[s], bos)[0] for s in SPLITS}
    ckpt.unlink(missing_ok=True)
    return ModelResult(
        scores=scores,
        minutes=result.train_seconds / 60,
        steps=result.steps,
        stopped=result.stopped,
    )


def run_row(tok: Tokenization, text: bytes, args: argparse.Namespace, workdir: Path, log) -> Row:
    """Prepare one tokenization's data and run every model on it."""
    from seqlm.data.corpus import prepare_text
    from seqlm.params import CleanParams, VocabParams

    start = time.perf_counter()
    data = prepare_text(text, tok.params(), VocabParams(), CleanParams(mode="none"))
    row = Row(
        tok=tok,
        vocab=len(data.vocab),
        tokens={s: int(d.ids.size) for s, d in data.splits.items()},
        oov={s: data.splits[s].oov for s in SPLITS},
        prepare_seconds=time.perf_counter() - start,
    )
    log(
        f"{tok.name}: vocabulary {row.vocab:,}, tokens "
        + ", ".join(f"{s} {n:,}" for s, n in row.tokens.items())
        + f" ({row.prepare_seconds:.1f} s)"
    )
    for model in args.models:
        start = time.perf_counter()
        if model == "ngram":
            max_order = args.max_order or (8 if tok.kind == "char" else 5)
            row.models[model] = ngram_result(data, max_order)
        else:
            row.models[model] = neural_result(model, data, args, workdir)
        r = row.models[model]
        log(
            f"  {model}: val {r.scores['val'].bits_per_byte:.4f} / test "
            f"{r.scores['test'].bits_per_byte:.4f} bits per byte"
            + (f", order {r.order}" if r.order else "")
            + (f", {r.steps} steps, stopped by {r.stopped}" if r.steps is not None else "")
            + f" ({time.perf_counter() - start:.1f} s)"
        )
    return row


def table(rows: list[Row], models: Sequence[str], metric: str) -> str:
    """The markdown table of ``metric`` (``bits_per_byte`` or ``bits_per_char``)."""
    head = ["tokenization", "vocab", "tokens train / val / test", "<unk> val / test"]
    if "ngram" in models:
        head.append("n-gram order")
    for m in models:
        head += [f"{m} val", f"{m} test"]
    head += [f"{m} min" for m in models if m != "ngram"]
    lines = []
    for row in rows:
        cells = [
            row.tok.name,
            f"{row.vocab:,}",
            " / ".join(f"{row.tokens[s]:,}" for s in ("train", "val", "test")),
            " / ".join(str(row.oov[s]) for s in SPLITS),
        ]
        if "ngram" in models:
            cells.append(str(row.models["ngram"].order))
        for m in models:
            cells += [f"{getattr(row.models[m].scores[s], metric):.4f}" for s in SPLITS]
        cells += [f"{row.models[m].minutes:.2f}" for m in models if m != "ngram"]
        lines.append(cells)
    return bench_ptb.markdown_table(head, lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="timemachine")
    ap.add_argument(
        "--kinds",
        nargs="+",
        choices=KINDS,
        default=["char", "word", "bpe"],
        help="tokenizations (bpe and unigram: one row per --bpe-sizes size)",
    )
    ap.add_argument(
        "--bpe-sizes",
        nargs="+",
        type=int,
        default=[512, 2048],
        help="subword vocabulary sizes (tokenize.vocab_size)",
    )
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    ap.add_argument(
        "--minutes", type=float, default=2.0, help="train.budget_minutes of each neural model"
    )
    ap.add_argument(
        "--steps",
        type=int,
        default=0,
        help="train exactly this many optimizer steps instead of a budget (repeatable figures)",
    )
    ap.add_argument(
        "--max-order",
        type=int,
        default=0,
        help="the n-gram's highest order tried (0: 8 for char, 5 otherwise)",
    )
    ap.add_argument("--seed", type=int, default=0, help="train.seed")
    ap.add_argument("--device", default="auto", help="train.device: auto, cpu or cuda")
    ap.add_argument("--threads", type=int, default=0, help="train.threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.minutes <= 0 and not args.steps:
        ap.error("--minutes must be > 0 (or give --steps)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("SEQLM_NO_PROGRESS", "1")
    import torch

    path = bench_ptb.mirror() / CORPORA[args.corpus]
    if not path.is_file():
        print(
            f"{path} does not exist: set SEQLM_MIRROR to the folder of the corpora", file=sys.stderr
        )
        return 2
    text = path.read_bytes()
    toks = [
        Tokenization(kind, size)
        for kind in args.kinds
        for size in ([*args.bpe_sizes] if kind in ("bpe", "unigram") else [None])
    ]
    training = f"{args.steps} steps" if args.steps else f"{args.minutes:g} minutes"
    print(
        f"{args.corpus} ({path}, {len(text):,} bytes, clean: none, 90/5/5 by line); "
        f"{', '.join(t.name for t in toks)} x {', '.join(args.models)}; {training} a neural "
        f"model, seed {args.seed}, torch {torch.__version__}",
        flush=True,
    )

    def log(line: str) -> None:
        print(line, flush=True)

    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for tok in toks:
            rows.append(run_row(tok, text, args, Path(tmp), log))
    print()
    print(f"val and test bits per byte ({args.corpus}; neural models: {training} each)")
    print(table(rows, args.models, "bits_per_byte"))
    same = all(
        math.isclose(s.bits_per_char, s.bits_per_byte, rel_tol=1e-12) and s.characters == s.bytes
        for row in rows
        for r in row.models.values()
        for s in r.scores.values()
    )
    print()
    if same:
        print("the text is ASCII: bits per character equal bits per byte (every split counted)")
    else:
        print("bits per character (the text is not all ASCII)")
        print(table(rows, args.models, "bits_per_char"))
    print(f"\nwall time {(time.perf_counter() - started) / 60:.1f} minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
