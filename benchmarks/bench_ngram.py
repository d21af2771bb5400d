"""Speed of the n-gram baseline (run by hand; prints figures, asserts nothing).

1. Fit + score of a character 7-gram (modified Kneser-Ney) on the full Time Machine: counting,
   fitting, and scoring train/val/test under the project's convention, wall time of each.
2. Scoring speed against NLTK's ``nltk.lm.KneserNeyInterpolated`` at order 5 on the same data
   (stream mode, the train stream as one padded sequence). NLTK scores a few hundred characters
   a second, so it is timed on a sample of the val split (``--nltk-chars``); ours on all of val and
   test.

Usage::

    .venv/bin/python benchmarks/bench_ngram.py [--corpus PATH] [--nltk-chars 1500]

``--corpus`` defaults to ``$SEQLM_MIRROR/timemachine.txt``. NLTK is a dev dependency
(``pip install nltk``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from seqlm.data.corpus import prepare_text
from seqlm.data.tokens import stream
from seqlm.ngram import count_stream, fit_ngram
from seqlm.perplexity import score_split


def best_of(repeats: int, fn):
    """(smallest wall time in seconds, last result) over ``repeats`` calls."""
    best, out = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mirror = os.environ.get("SEQLM_MIRROR")
    ap.add_argument(
        "--corpus",
        default=str(Path(mirror) / "timemachine.txt") if mirror else None,
        help="the Time Machine text (default: $SEQLM_MIRROR/timemachine.txt)",
    )
    ap.add_argument(
        "--order", type=int, default=7, help="order of the timed fit + score (default 7)"
    )
    ap.add_argument(
        "--nltk-order", type=int, default=5, help="order of the NLTK comparison (default 5)"
    )
    ap.add_argument("--nltk-chars", type=int, default=1500, help="val characters NLTK scores")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of our timings (best is kept)")
    args = ap.parse_args()
    if not args.corpus or not Path(args.corpus).is_file():
        ap.error("give --corpus or set SEQLM_MIRROR to a folder holding timemachine.txt")

    data = prepare_text(Path(args.corpus).read_bytes())  # default params: char tokens, 90/5/5
    vocab, token_lines = data.vocab, data.token_lines
    ids = {s: d.ids for s, d in data.splits.items()}
    chars = {s: d.characters for s, d in data.splits.items()}
    bos = vocab.id_of("<bos>")
    print(
        f"Time Machine, characters: train {ids['train'].size}, val {ids['val'].size}, "
        f"test {ids['test'].size}; vocabulary {len(vocab)}"
    )

    # --- 1. character 7-gram, fit + score ---------------------------------------------------
    n = args.order
    t_count, counts = best_of(args.repeats, lambda: count_stream(ids["train"], len(vocab), n, bos))
    t_fit, model = best_of(args.repeats, lambda: fit_ngram(counts, n, "kneser_ney"))
    t_score, lps = best_of(args.repeats, lambda: {s: model.target_logprobs(ids[s]) for s in ids})
    scored = sum(ids[s].size for s in ids)
    print(f"\n[1] char {n}-gram modified Kneser-Ney, numpy (best of {args.repeats}):")
    print(
        f"    count {t_count:.3f} s + fit {t_fit:.3f} s + score train/val/test {t_score:.3f} s "
        f"= {t_count + t_fit + t_score:.3f} s wall"
    )
    print(f"    scoring: {scored / t_score:,.0f} chars/s over {scored:,} characters")
    for s in ("train", "val", "test"):
        sc = score_split(lps[s], chars[s], 0)
        print(f"    {s:5s} perplexity {sc.perplexity:.4f}  bits/char {sc.bits_per_char:.4f}")

    # --- 2. against NLTK at order 5 -------------------------------------------------------
    try:
        from nltk.lm import KneserNeyInterpolated
        from nltk.lm.preprocessing import padded_everygram_pipeline
    except ImportError:
        print("\n[2] skipped: nltk is not installed (pip install nltk)", file=sys.stderr)
        return 0
    k = args.nltk_order
    counts_k = count_stream(ids["train"], len(vocab), k, bos)
    ours_k = fit_ngram(counts_k, k, "kneser_ney")
    t_ours, lp_ours = best_of(
        args.repeats,
        lambda: np.concatenate(
            [ours_k.target_logprobs(ids["val"]), ours_k.target_logprobs(ids["test"])]
        ),
    )
    ours_rate = lp_ours.size / t_ours

    train_text = list(stream(token_lines["train"], "char"))
    val_text = list(stream(token_lines["val"], "char"))[: args.nltk_chars]
    t0 = time.perf_counter()
    grams, padded_vocab = padded_everygram_pipeline(k, [train_text])
    nltk_lm = KneserNeyInterpolated(k)
    nltk_lm.fit(grams, padded_vocab)
    t_nltk_fit = time.perf_counter() - t0
    context = ["<s>"] * (k - 1)
    t0 = time.perf_counter()
    nltk_lp = []
    for ch in val_text:  # NLTK's API is one token at a time
        nltk_lp.append(nltk_lm.logscore(ch, context[-(k - 1) :]))
        context.append(ch)
    t_nltk = time.perf_counter() - t0
    nltk_rate = len(val_text) / t_nltk
    ours_sample = ours_k.target_logprobs(ids["val"][: len(val_text)])
    print(f"\n[2] order {k}, scoring speed (characters per second):")
    t_fit_k, _ = best_of(1, lambda: fit_ngram(count_stream(ids["train"], len(vocab), k, bos), k))
    print(
        f"    seqlm numpy : {ours_rate:>12,.0f} chars/s  ({lp_ours.size:,} val+test chars in "
        f"{t_ours * 1e3:.1f} ms; count + fit {counts_k.tokens:,} train chars in {t_fit_k:.3f} s)"
    )
    print(
        f"    NLTK        : {nltk_rate:>12,.0f} chars/s  ({len(val_text):,} val chars in "
        f"{t_nltk:.1f} s; fit in {t_nltk_fit:.1f} s)"
    )
    print(f"    speed-up    : {ours_rate / nltk_rate:>12,.0f}x")
    nltk_ppl = 2 ** (-np.mean(nltk_lp))
    ours_ppl = math.exp(-ours_sample.mean())
    print(
        f"    on those {len(val_text)} val chars: perplexity seqlm {ours_ppl:.4f} (modified KN), "
        f"NLTK {nltk_ppl:.4f} (NLTK's interpolated KN, one discount)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
