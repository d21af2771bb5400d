"""The n-gram stage's model held whole and sharded, side by side (run by hand; prints figures,
asserts nothing).

For a dataset preset (``--dataset``, default ``ptb``: its KN5 over the Penn Treebank's words) the
corpus is fetched (``$SEQLM_MIRROR`` or ``../shared/data``) and prepared as the data stages do (in
a child process that writes the splits' ids to files, as the corpus stage does), then the ngram
stage's logic (:func:`seqlm.ngram.baseline.run_baseline` on the mapped ids, one process, dynamic
evaluation off) runs once per ``ngram.memory_mb`` in ``--caps``, each in a child process so that
its peak resident memory is its own. A cap below what the model's tables need shards it. Each row gives the
shards and the depth (``-``: held whole), val and test perplexity, the n-grams kept per order, the
wall time and the peak RSS, and whether val's and test's log-probabilities are the first row's,
byte for byte. ``--prune`` sets ``ngram.prune``. ``--copies N`` makes train N copies of itself,
every copy after the first with the words of each line shuffled (a seeded shuffle per copy), so
that the text does not repeat and the model grows with it.

Usage::

    .venv/bin/python benchmarks/bench_sharded.py [--dataset ptb] [--caps 2048,240] [--prune 0 0 1]
    .venv/bin/python benchmarks/bench_sharded.py --copies 5 --caps 6000,1000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def shuffled_copies(text: bytes, copies: int) -> bytes:
    """``text`` and ``copies − 1`` copies of it, each line's words shuffled (seeded per copy)."""
    lines = text.decode("utf-8").splitlines()
    out = [text.decode("utf-8").rstrip("\n")]
    for copy in range(1, copies):
        rng = np.random.default_rng(copy)
        for line in lines:
            words = line.split()
            out.append(" ".join(words[i] for i in rng.permutation(len(words))))
    return ("\n".join(out) + "\n").encode("utf-8")


def prepare(dataset: str, copies: int, out: Path) -> None:
    """The corpus as the data stages leave it: ``vocab.tsv``, each split's ids (``<split>.npy``)
    and counts (``splits.json``), the ngram params (``ngram.json``) and the token kind."""
    from seqlm.data.corpus import prepare_text
    from seqlm.data.download import fetch_corpus
    from seqlm.data.ids import write_ids
    from seqlm.data.vocab import save_vocab
    from seqlm.ops.presets import compose_params
    from seqlm.params import CleanParams, DownloadParams, TokenizeParams, VocabParams, build

    params = compose_params([f"dataset={dataset}"], out / "params.yaml", REPO / "conf")
    files = fetch_corpus(build(DownloadParams, "download", params["download"]), out / "raw")
    tok = build(TokenizeParams, "tokenize", params["tokenize"])
    texts = {name: path.read_bytes() for name, path in files.items()}
    if copies > 1:
        texts["train"] = shuffled_copies(texts["train"], copies)
    data = prepare_text(
        texts if "train" in texts else next(iter(texts.values())),  # one text, split by fractions
        tok,
        build(VocabParams, "vocab", params["vocab"]),
        build(CleanParams, "clean", params["clean"]),
    )
    save_vocab(data.vocab, out / "vocab.tsv")
    splits = {}
    for name, split in data.splits.items():
        write_ids(out / f"{name}.npy", [split.ids], split.ids.size, np.dtype(np.uint32))
        splits[name] = {"lines": split.lines, "characters": split.characters, "oov": split.oov,
                        "bytes": split.bytes, "words": split.words}  # fmt: skip
    record = {"splits": splits, "ngram": params["ngram"], "token": tok.token}
    (out / "corpus.json").write_text(json.dumps(record), encoding="utf-8")


def run_one(corpus: Path, cap: int, prune: list[int], out: Path) -> dict[str, object]:
    """The stage's logic at ``cap`` MB on the prepared ``corpus``, in this process: its figures."""
    from seqlm.data.corpus import SplitData
    from seqlm.data.ids import read_ids
    from seqlm.data.vocab import load_vocab
    from seqlm.ngram.baseline import run_baseline
    from seqlm.params import GenerateParams, NgramParams, build

    record = json.loads((corpus / "corpus.json").read_text(encoding="utf-8"))
    splits = {
        name: SplitData(name, read_ids(corpus / f"{name}.npy"), **counts)
        for name, counts in record["splits"].items()
    }
    settings = {**record["ngram"], "memory_mb": cap, "dynamic": False, "prune": prune}
    ngram = build(NgramParams, "ngram", settings)
    vocab = load_vocab(corpus / "vocab.tsv")
    t0 = time.perf_counter()
    result = run_baseline(ngram, GenerateParams(), vocab, splits, record["token"], 1, out)
    return {
        "cap": cap,
        "sharded": result.sharded,
        "order": result.model.order,
        "val": result.scores["val"].perplexity,
        "test": result.scores["test"].perplexity,
        "ngrams": result.model.table_rows(),
        "seconds": time.perf_counter() - t0,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def child(arguments: list[str]) -> dict[str, object]:
    """This script with ``arguments`` in a child process: the JSON it prints last."""
    env = dict(os.environ, SEQLM_NO_PROGRESS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")])
    command = [sys.executable, __file__, *arguments]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(arguments)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_logprobs(a: Path, b: Path) -> bool:
    names = ("val_logprobs.npy", "test_logprobs.npy")
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dataset", default="ptb", help="a preset of conf/dataset/")
    ap.add_argument("--caps", default="2048,240", help="ngram.memory_mb values, comma-separated")
    ap.add_argument("--prune", type=int, nargs="*", default=[], help="ngram.prune")
    ap.add_argument("--copies", type=int, default=1, help="train's copies, shuffled (see above)")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.prepare:
        prepare(args.dataset, args.copies, args.corpus)
        print(json.dumps({}))
        return 0
    if args.one is not None:
        print(json.dumps(run_one(args.corpus, args.one, args.prune, args.out)))
        return 0
    caps = [int(c) for c in args.caps.split(",") if c.strip()]
    with tempfile.TemporaryDirectory(prefix="seqlm-bench-sharded-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        child(["--dataset", args.dataset, "--copies", str(args.copies), "--prepare",
               "--corpus", str(corpus)])  # fmt: skip
        runs = []
        for cap in caps:
            out = Path(tmp) / str(cap)
            out.mkdir()
            pruned = ["--prune", *map(str, args.prune)] if args.prune else []
            runs.append((child(["--one", str(cap), "--corpus", str(corpus), "--out", str(out),
                                *pruned]), cap))  # fmt: skip
        first = Path(tmp) / str(caps[0])
        print(f"{args.dataset}, train x{args.copies}, ngram.prune {args.prune} "
              f"(python {sys.version.split()[0]}):")  # fmt: skip
        print(f"{'memory_mb':>9} {'shards':>6} {'depth':>5} {'order':>5} {'val':>10} {'test':>10} "
              f"{'wall s':>7} {'peak RSS MB':>11}  same log-probs  n-grams kept")  # fmt: skip
        for r, cap in runs:
            sharded = r["sharded"] or {"shards": "-", "depth": "-"}
            same = same_logprobs(first, Path(tmp) / str(cap))
            print(f"{cap:>9} {sharded['shards']:>6} {sharded['depth']:>5} {r['order']:>5} "
                  f"{r['val']:>10.4f} {r['test']:>10.4f} {r['seconds']:>7.1f} "
                  f"{r['rss_mb']:>11.0f}  {str(same):<14}  {r['ngrams']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
