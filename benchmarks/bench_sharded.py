"""The n-gram stage's model held whole and sharded, side by side (run by hand; prints figures,
asserts nothing).

For a dataset preset (``--dataset``, default ``ptb``: its KN5 over the Penn Treebank's words) the
corpus is fetched (``$SEQLM_MIRROR`` or ``../shared/data``) and prepared as the data stages do, then
the ngram stage's logic (:func:`seqlm.ngram.baseline.run_baseline`, one process, dynamic evaluation
off) runs once per ``ngram.memory_mb`` in ``--caps``, each in a child process so that its peak
resident memory is its own. A cap below what the model's tables need shards it. Each row gives the
shards and the depth (``-``: held whole), val and test perplexity, the n-grams kept per order, the
wall time and the peak RSS, and whether val's and test's log-probabilities are the first row's,
byte for byte. ``--prune`` sets ``ngram.prune``.

Usage::

    .venv/bin/python benchmarks/bench_sharded.py [--dataset ptb] [--caps 2048,240] [--prune 0 0 1]
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

REPO = Path(__file__).resolve().parent.parent


def run_one(dataset: str, cap: int, prune: list[int], out: Path) -> dict[str, object]:
    """The stage's logic at ``cap`` MB, in this process: its figures."""
    from seqlm.data.corpus import prepare_text
    from seqlm.data.download import fetch_corpus
    from seqlm.ngram.baseline import run_baseline
    from seqlm.ops.presets import compose_params
    from seqlm.params import (
        CleanParams,
        DownloadParams,
        GenerateParams,
        NgramParams,
        TokenizeParams,
        VocabParams,
        build,
    )

    params = compose_params([f"dataset={dataset}"], out / "params.yaml", REPO / "conf")
    files = fetch_corpus(build(DownloadParams, "download", params["download"]), out / "raw")
    tok = build(TokenizeParams, "tokenize", params["tokenize"])
    texts = {name: path.read_bytes() for name, path in files.items()}
    data = prepare_text(
        texts if "train" in texts else next(iter(texts.values())),  # one text, split by fractions
        tok,
        build(VocabParams, "vocab", params["vocab"]),
        build(CleanParams, "clean", params["clean"]),
    )
    settings = {**params["ngram"], "memory_mb": cap, "dynamic": False, "prune": prune}
    ngram = build(NgramParams, "ngram", settings)
    t0 = time.perf_counter()
    result = run_baseline(ngram, GenerateParams(), data.vocab, data.splits, tok.token, 1, out)
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


def child(dataset: str, cap: int, prune: list[int], out: Path) -> dict[str, object]:
    """:func:`run_one` in a child process."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SEQLM_NO_PROGRESS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")])
    command = [sys.executable, __file__, "--dataset", dataset, "--one", str(cap), "--out", str(out)]
    command += ["--prune", *map(str, prune)] if prune else []
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"the run at {cap} MB failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_logprobs(a: Path, b: Path) -> bool:
    names = ("val_logprobs.npy", "test_logprobs.npy")
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dataset", default="ptb", help="a preset of conf/dataset/")
    ap.add_argument("--caps", default="2048,240", help="ngram.memory_mb values, comma-separated")
    ap.add_argument("--prune", type=int, nargs="*", default=[], help="ngram.prune")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one is not None:
        print(json.dumps(run_one(args.dataset, args.one, args.prune, args.out)))
        return 0
    caps = [int(c) for c in args.caps.split(",") if c.strip()]
    with tempfile.TemporaryDirectory(prefix="seqlm-bench-sharded-") as tmp:
        runs = [(child(args.dataset, cap, args.prune, Path(tmp) / str(cap)), cap) for cap in caps]
        first = Path(tmp) / str(caps[0])
        print(f"{args.dataset}, ngram.prune {args.prune} (python {sys.version.split()[0]}):")
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
