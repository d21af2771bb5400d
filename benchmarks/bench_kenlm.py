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


def seqlm_perplexities(data, order: int) -> dict[str, float]:
    """Per-token perplexity of val and test under seqlm's stream-mode Kneser-Ney."""
    from seqlm.ngram import count_stream, fit_ngram

    vocab = data.vocab
    counts = count_stream(data.splits["train"].ids, len(vocab), order, vocab.id_of("<bos>"))
    model = fit_ngram(counts, order, "kneser_ney")
    return {
        s: math.exp(-float(np.mean(model.target_logprobs(data.splits[s].ids))))
        for s in ("val", "test")
    }


def kenlm_perplexities(data, order: int, lmplz: Path, workdir: Path) -> dict[str, float]:
    """Per-token perplexity of val and test under ``lmplz -o order`` on the one-line train stream."""
    import kenlm

    names = data.vocab.tokens
    (workdir / "train.txt").write_text(kenlm_line(data.splits["train"].ids, names) + "\n")
    arpa = workdir / "model.arpa"
    with (workdir / "train.txt").open("rb") as text, arpa.open("wb") as out:
        subprocess.run(
            [str(lmplz), "-o", str(order), "-S", "20%", "-T", str(workdir)],
            stdin=text,
            stdout=out,
            stderr=subprocess.DEVNULL,
            check=True,
        )
    model = kenlm.Model(str(arpa))
    out = {}
    for split in ("val", "test"):
        line = kenlm_line(data.splits[split].ids, names)
        log10 = [s for s, _, _ in model.full_scores(line, bos=True, eos=False)]
        out[split] = 10 ** (-float(np.mean(log10)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lmplz", type=Path, required=True, help="KenLM's lmplz program")
    p.add_argument("--dataset", default="wikitext2", choices=DATASETS)
    p.add_argument("--order", type=int, default=5)
    args = p.parse_args(argv)
    if not args.lmplz.is_file():
        p.error(f"--lmplz {args.lmplz} is not a file (build it: see this script's docstring)")
    started = time.perf_counter()
    data = bench_ptb.preset_data(args.dataset)
    print(f"{args.dataset}: data built in {time.perf_counter() - started:.1f}s", flush=True)
    started = time.perf_counter()
    ours = seqlm_perplexities(data, args.order)
    print(f"seqlm: fitted and scored in {time.perf_counter() - started:.1f}s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        theirs = kenlm_perplexities(data, args.order, args.lmplz, Path(tmp))
        print(f"KenLM: lmplz and queries in {time.perf_counter() - started:.1f}s", flush=True)
    print(f"\n| split | seqlm KN{args.order} | KenLM lmplz -o {args.order} | difference |")
    print("|---|---|---|---|")
    for split in ("val", "test"):
        diff = 100 * (ours[split] - theirs[split]) / theirs[split]
        print(f"| {split} | {ours[split]:.3f} | {theirs[split]:.3f} | {diff:+.4f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
