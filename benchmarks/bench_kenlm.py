"""seqlm's Kneser-Ney n-gram against KenLM's ``lmplz`` on the same stream (run by hand; not a test).

A word-level preset's data (``--dataset``: ``wikitext2`` or ``ptb``, built by
:func:`seqlm.data.corpus.prepare_text` from the mirror's files exactly as the data stages build
them) are modelled twice at ``--order`` (default 5):

* **seqlm**: stream mode, as the ``ngram`` stage fits it — the train split as one stream
  ``<bos> x1 .. xN`` (``<eos>`` a token after every line), interpolated modified Kneser-Ney
  (:func:`seqlm.ngram.count_stream`, :func:`seqlm.ngram.fit_ngram`), each split scored from a fresh
  ``<bos>`` under the convention (:mod:`seqlm.perplexity`);
* **KenLM**: ``lmplz -o ORDER`` on the same stream written as **one line** (so its ``<s>`` is
  seqlm's ``<bos>`` and no context is reset at a line's end), the tokens spelled as seqlm's
  vocabulary spells them, ``<unk>`` written as a plain word (``unk``… in the ``UNK_AS`` spelling:
  WikiText's ``<unk>`` is a word of the corpus, counted like any other, as seqlm counts it) and
  ``<eos>`` as the word it is to KenLM; each split queried as one line from ``<s>`` with the
  ``kenlm`` Python module, ``</s>`` not scored.

With ``--prune 0 0 1`` both are pruned alike (``ngram.prune`` and ``lmplz --prune``) and the
n-grams each keeps per order are printed too.

It prints both perplexities of val and test and their relative difference. The two differ only in
what each puts in the uniform floor of the interpolation (seqlm: the vocabulary with ``<bos>``;
KenLM: its own vocabulary with ``<s>``, ``</s>`` and ``<unk>``) and in KenLM's one ``</s>``
count at the stream's end.

``lmplz`` is KenLM's estimator, a C++ program (not in the ``kenlm`` wheel); build it from the
``kenlm`` source distribution (Boost's program_options, system and thread and CMake needed), e.g.
on Debian::

    apt-get install libboost-program-options-dev libboost-system-dev libboost-thread-dev cmake
    pip download --no-deps --no-binary :all: kenlm && tar xzf kenlm-*.tar.gz
    cd kenlm-*/ && mkdir build && cd build && cmake .. && make lmplz      # bin/lmplz

Usage (from the repository root)::

    python benchmarks/bench_kenlm.py --lmplz /path/to/bin/lmplz                 # WikiText-2
    python benchmarks/bench_kenlm.py --lmplz /path/to/bin/lmplz --dataset ptb
    python benchmarks/bench_kenlm.py --lmplz /path/to/bin/lmplz --dataset ptb --prune 0 0 1
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ptb  # noqa: E402  (a sibling benchmark, not a package: its conf/ composition)

UNK_AS = "UNK_WORD"  # how <unk> is spelled for KenLM, where "<unk>" is its own unknown word
DATASETS = ("wikitext2", "ptb")  # word-level presets with <eos> line ends


def kenlm_line(ids: np.ndarray, names: Sequence[str]) -> str:
    """A split's stream as one line of KenLM input: the tokens' names, ``<unk>`` as :data:`UNK_AS`."""
    spelled = [UNK_AS if name == "<unk>" else name for name in names]
    return " ".join(spelled[i] for i in np.asarray(ids, dtype=np.int64))


def seqlm_perplexities(data, order: int, prune: Sequence[int] = ()) -> dict[str, object]:
    """Per-token perplexity of val and test under seqlm's stream-mode Kneser-Ney, and the
    n-grams it keeps per order."""
    from seqlm.ngram import count_stream, fit_ngram

    vocab = data.vocab
    counts = count_stream(data.splits["train"].ids, len(vocab), order, vocab.id_of("<bos>"))
    model = fit_ngram(counts, order, "kneser_ney", prune=prune)
    out: dict[str, object] = {
        s: math.exp(-float(np.mean(model.target_logprobs(data.splits[s].ids))))
        for s in ("val", "test")
    }
    out["ngrams"] = [model.counts.rows(k) for k in range(1, order + 1)]
    return out


def kenlm_perplexities(
    data, order: int, lmplz: Path, workdir: Path, prune: Sequence[int] = ()
) -> dict[str, object]:
    """Per-token perplexity of val and test under ``lmplz -o order`` on the one-line train stream,
    and the n-grams its ARPA file holds per order."""
    import kenlm

    names = data.vocab.tokens
    (workdir / "train.txt").write_text(kenlm_line(data.splits["train"].ids, names) + "\n")
    arpa = workdir / "model.arpa"
    pruning = ["--prune", *map(str, prune)] if prune else []
    with (workdir / "train.txt").open("rb") as text, arpa.open("wb") as out:
        subprocess.run(
            [str(lmplz), "-o", str(order), "-S", "20%", "-T", str(workdir), *pruning],
            stdin=text,
            stdout=out,
            stderr=subprocess.DEVNULL,
            check=True,
        )
    model = kenlm.Model(str(arpa))
    result: dict[str, object] = {}
    for split in ("val", "test"):
        line = kenlm_line(data.splits[split].ids, names)
        log10 = [s for s, _, _ in model.full_scores(line, bos=True, eos=False)]
        result[split] = 10 ** (-float(np.mean(log10)))
    with arpa.open(encoding="utf-8") as f:
        header = [line for line in (f.readline() for _ in range(order + 2)) if "=" in line]
    result["ngrams"] = [int(line.split("=")[1]) for line in header]
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lmplz", type=Path, required=True, help="KenLM's lmplz program")
    p.add_argument("--dataset", default="wikitext2", choices=DATASETS)
    p.add_argument("--order", type=int, default=5)
    p.add_argument("--prune", type=int, nargs="*", default=[], help="thresholds per order")
    args = p.parse_args(argv)
    if not args.lmplz.is_file():
        p.error(f"--lmplz {args.lmplz} is not a file (build it: see this script's docstring)")
    started = time.perf_counter()
    data = bench_ptb.preset_data(args.dataset)
    print(f"{args.dataset}: data built in {time.perf_counter() - started:.1f}s", flush=True)
    started = time.perf_counter()
    ours = seqlm_perplexities(data, args.order, args.prune)
    print(f"seqlm: fitted and scored in {time.perf_counter() - started:.1f}s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        theirs = kenlm_perplexities(data, args.order, args.lmplz, Path(tmp), args.prune)
        print(f"KenLM: lmplz and queries in {time.perf_counter() - started:.1f}s", flush=True)
    print(f"\n| split | seqlm KN{args.order} | KenLM lmplz -o {args.order} | difference |")
    print("|---|---|---|---|")
    for split in ("val", "test"):
        a, b = float(ours[split]), float(theirs[split])  # type: ignore[arg-type]
        print(f"| {split} | {a:.3f} | {b:.3f} | {100 * (a - b) / b:+.4f} % |")
    print(f"| n-grams kept per order | {ours['ngrams']} | {theirs['ngrams']} | |")
    if args.prune:
        print(f"(pruned: ngram.prune {args.prune}, lmplz --prune {' '.join(map(str, args.prune))})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
