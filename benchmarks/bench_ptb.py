"""Train word-level recipes on the Penn Treebank and print val/test perplexity per epoch and the time.

Run by hand, on a CPU or a GPU (``--device``), e.g. the published recipes and candidate defaults::

    python benchmarks/bench_ptb.py --data-dir ../shared/data --recipes zaremba_small,default
    python benchmarks/bench_ptb.py --data-dir DIR --recipes zaremba_medium --device cuda

Several recipes run as parallel processes (``--parallel``), each writing its epochs as JSON lines to
``--out-dir/<recipe>.jsonl`` as it goes (a run cut short keeps the epochs it finished), then a table:
the recipe, epochs, best val perplexity, the test perplexity of the best val epoch, minutes of
training, tokens/s, beside the published figure where there is one. The data are the PTB files of the
``ptb`` preset (``conf/dataset/ptb.yaml``: pre-split, ``<eos>`` after every line, 10,000 words), built
with seqlm's own data functions; training is seqlm's ``train()`` and scoring its convention.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PUBLISHED = {"zaremba_small": (120.7, 114.5), "zaremba_medium": (86.2, 82.7)}
"""Zaremba, Sutskever & Vinyals (2014), table 1: (val, test) perplexity."""

CONF = Path(__file__).resolve().parent.parent / "conf"


def mirror() -> Path:
    """Where the corpora are: ``$SEQLM_MIRROR``, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("SEQLM_MIRROR") or CONF.parent.parent / "shared" / "data")


def preset_data(dataset: str, params: dict[str, Any] | None = None):  # -> PreparedData
    """A dataset preset's data as its data stages build them: its file (or train/val/test files)
    found in the mirror as the download stage finds it (by its URL and sha1), then ``clean``,
    ``tokenize`` and ``vocab`` of ``params`` (default: the preset composed from ``conf/``)."""
    from seqlm.data.corpus import prepare_text
    from seqlm.data.download import mirror_file
    from seqlm.params import CleanParams, TokenizeParams, VocabParams, build

    params = composed(dataset) if params is None else params
    download = params["download"]

    def read(source: dict[str, Any]) -> bytes:
        path = mirror_file(source["url"], str(mirror()), source.get("sha1"))
        if path is None:
            raise SystemExit(f"{source['url']} is not in the mirror {mirror()} (set SEQLM_MIRROR)")
        return path.read_bytes()

    splits = download.get("splits")
    text = {s: read(f) for s, f in splits.items()} if splits else read(download)
    return prepare_text(
        text,
        build(TokenizeParams, "tokenize", params["tokenize"]),
        build(VocabParams, "vocab", params["vocab"]),
        build(CleanParams, "clean", params["clean"]),
    )


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    """A markdown table: the header, its rule, a line a row of cells."""
    lines = [head, ["---"] * len(head), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` laid over ``base``, recursively (what Hydra's composition does to mappings)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def composed(dataset: str, recipe: str | None = None) -> dict[str, Any]:
    """``conf/`` composed for ``dataset=... recipe=...`` without Hydra (which a GPU machine may
    lack): the defaults, then the dataset preset, then the recipe (a test checks it is Hydra's)."""
    import yaml

    def read(path: Path) -> dict[str, Any]:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}

    params = {k: v for k, v in read(CONF / "config.yaml").items() if k != "defaults"}
    params = merge(params, read(CONF / "dataset" / f"{dataset}.yaml"))
    return merge(params, read(CONF / "recipe" / f"{recipe}.yaml")) if recipe else params


def candidate(
    layers: int,
    size: int,
    emb: int,
    drop: float,
    out: float,
    batch: int,
    epochs: int,
    lr: float = 3e-3,
) -> dict[str, dict[str, Any]]:
    """A CPU-friendly recipe: AdamW, cosine, dropout, adaptive softmax (net/train overrides)."""
    net = {
        "num_layers": layers,
        "hidden_size": size,
        "embedding_size": emb,
        "dropout": drop if layers > 1 else 0.0,
        "embedding_dropout": 0.05,
        "input_dropout": drop,
        "output_dropout": out,
        "weight_drop": 0.0,
        "locked": True,
        "tie_weights": False,
        "output": "adaptive",
        "cutoffs": [2000, 6000],
        "div_value": 4.0,
        "init_range": 0.0,
    }
    train = {
        "optimizer": "adamw",
        "lr": lr,
        "momentum": 0.0,
        "weight_decay": 0.01,
        "clip": 1.0,
        "schedule": "cosine",
        "warmup_steps": 100,
        "batch_size": batch,
        "num_steps": 35,
        "epochs": epochs,
        "sampling": "sequential",
    }
    return {"net": net, "train": train}


RUNS: dict[str, tuple[str | None, dict[str, dict[str, Any]]]] = {
    "default": (None, {}),  # the ptb preset's own recipe
    "zaremba_small": ("zaremba_small", {}),
    "zaremba_medium": ("zaremba_medium", {}),
    "c_2x200": (None, candidate(2, 200, 200, 0.2, 0.3, 20, 7)),
    "c_2x200_b32": (None, candidate(2, 200, 200, 0.2, 0.3, 32, 8)),
    "c_1x400": (None, candidate(1, 400, 400, 0.25, 0.4, 32, 6)),
    "c_2x256": (None, candidate(2, 256, 256, 0.25, 0.4, 32, 6)),
    "c_1x512": (None, candidate(1, 512, 256, 0.2, 0.5, 32, 6, lr=2e-3)),
    "c_2x300": (None, candidate(2, 300, 300, 0.3, 0.4, 32, 5)),
}
"""Runs by name: a conf/recipe/ preset (None: the ptb preset's default), then net/train overrides."""


def run_params(name: str) -> tuple[str, Any, Any]:
    """The model name, NetParams and TrainParams of run ``name``."""
    from seqlm.params import NetParams, TrainParams

    recipe, overrides = RUNS[name]
    params = merge(composed("ptb", recipe), overrides)
    return params["model"], NetParams(**params["net"]), TrainParams(**params["train"])


def ptb_data(data_dir: Path):  # -> PreparedData
    """PTB as the ``ptb`` preset reads it, from ``ptb.{train,valid,test}.txt`` in ``data_dir``."""
    from seqlm.data.corpus import prepare_text
    from seqlm.params import CleanParams, TokenizeParams, VocabParams

    files = {"train": "ptb.train.txt", "val": "ptb.valid.txt", "test": "ptb.test.txt"}
    return prepare_text(
        {s: (data_dir / f).read_bytes() for s, f in files.items()},
        TokenizeParams(token="word", line_end="eos"),
        VocabParams(max_size=10001),
        CleanParams(mode="none"),
    )


def run_one(
    name: str, data_dir: Path, out_dir: Path, device: str, threads: int, smoke: bool = False
) -> None:
    """Train recipe ``name``, appending each epoch to ``out_dir/name.jsonl``; then its test score."""
    from seqlm.neural.checkpoint import load_checkpoint
    from seqlm.neural.evaluation import score
    from seqlm.neural.loop import train

    model_name, net, params = run_params(name)
    params = params.replace(device=device, threads=threads)
    data = ptb_data(data_dir)
    if smoke:  # the plumbing only: 20k train tokens, 3k val and test tokens, one epoch
        import dataclasses

        cut = {"train": 20_000, "val": 3_000, "test": 3_000}
        splits = {s: dataclasses.replace(d, ids=d.ids[: cut[s]]) for s, d in data.splits.items()}
        data = dataclasses.replace(data, splits=splits)
        params = params.replace(epochs=1)
    log = out_dir / f"{name}.jsonl"
    log.unlink(missing_ok=True)

    def on_evaluation(record) -> None:
        with log.open("a") as f:
            f.write(
                json.dumps(
                    {
                        "epoch": record.epoch,
                        "val": record.val_perplexity,
                        "train": record.train_perplexity,
                        "lr": record.lr,
                        "tokens_per_second": record.tokens_per_second,
                        "seconds": record.seconds,
                    }
                )
                + "\n"
            )

    ckpt = out_dir / f"{name}.pt"
    result = train(
        model_name,
        net,
        params,
        data.vocab,
        data.splits["train"],
        data.splits["val"],
        checkpoint_path=ckpt,
        on_evaluation=on_evaluation,
    )
    model, _ = load_checkpoint(ckpt, data.vocab, model_name=model_name, net=net, device=device)
    test, _ = score(model, data.splits["test"], data.vocab.id_of("<bos>"))
    with log.open("a") as f:
        f.write(
            json.dumps(
                {
                    "final": True,
                    "best_epoch": result.best_epoch,
                    "best_val": result.best_val_perplexity,
                    "test": test.perplexity,
                    "train_minutes": result.train_seconds / 60,
                    "tokens_per_second": result.tokens_per_second,
                    "device": result.device,
                }
            )
            + "\n"
        )
    ckpt.unlink(missing_ok=True)


def summary(names: list[str], out_dir: Path) -> str:
    """The table of every recipe's log (partial logs show the epochs done)."""
    rows = [
        "| recipe | epochs | best val | test | published val / test | train min | tokens/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        log = out_dir / f"{name}.jsonl"
        lines = [json.loads(x) for x in log.read_text().splitlines()] if log.is_file() else []
        epochs = [x for x in lines if "epoch" in x]
        final = next((x for x in lines if x.get("final")), None)
        pub = "{} / {}".format(*PUBLISHED[name]) if name in PUBLISHED else "—"
        best = min((e["val"] for e in epochs), default=float("nan"))
        if final:
            rows.append(
                f"| {name} | {len(epochs)} | {final['best_val']:.1f} | {final['test']:.1f} "
                f"| {pub} | {final['train_minutes']:.1f} | {final['tokens_per_second']:.0f} |"
            )
        else:
            tps = epochs[-1]["tokens_per_second"] if epochs else 0.0
            mins = sum(e["seconds"] for e in epochs) / 60
            rows.append(
                f"| {name} (cut short) | {len(epochs)} | {best:.1f} | — | {pub} "
                f"| {mins:.1f} | {tps:.0f} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True, help="folder of ptb.*.txt")
    ap.add_argument("--out-dir", type=Path, default=Path("ptb_runs"))
    ap.add_argument("--recipes", default="zaremba_small", help=f"comma list of {', '.join(RUNS)}")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads per process (0: torch's)")
    ap.add_argument("--parallel", type=int, default=1, help="recipes trained at once")
    ap.add_argument("--summary", action="store_true", help="only print the table of --out-dir")
    ap.add_argument("--smoke", action="store_true", help="a tiny slice for one epoch (plumbing)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.summary:
        print(summary(args.recipes.split(","), args.out_dir))
        return 0
    if args.worker:
        run_one(args.worker, args.data_dir, args.out_dir, args.device, args.threads, args.smoke)
        return 0
    names = args.recipes.split(",")
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        ap.error(f"unknown recipe(s) {unknown}; choose among {', '.join(RUNS)}")
    start, pending, running = time.time(), list(names), []
    base = [
        sys.executable,
        __file__,
        "--data-dir",
        str(args.data_dir),
        "--out-dir",
        str(args.out_dir),
        "--device",
        args.device,
        "--threads",
        str(args.threads),
        *(["--smoke"] if args.smoke else []),
    ]
    while pending or running:
        while pending and len(running) < args.parallel:
            name = pending.pop(0)
            err = (args.out_dir / f"{name}.log").open("w")
            running.append(
                subprocess.Popen(
                    [*base, "--worker", name],
                    stderr=err,
                    env={**os.environ, "SEQLM_NO_PROGRESS": "1"},
                )
            )
        time.sleep(5)
        running = [p for p in running if p.poll() is None]
        print(
            f"[{time.time() - start:.0f} s] {len(running)} running, {len(pending)} pending",
            flush=True,
        )
    print(summary(names, args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
