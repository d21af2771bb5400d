"""Stage ``ngram``: the n-gram baseline (Kneser-Ney or Laplace, order picked on val), per split."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from seqlm.core.atomic import remove_outputs, write_json, write_text
from seqlm.core.errors import ParamError
from seqlm.core.stage import parser, run_stage
from seqlm.core.workers import worker_count
from seqlm.data.corpus import load_split, tokens_path
from seqlm.data.split import SPLITS
from seqlm.data.tokens import read_token_file
from seqlm.data.vocab import load_vocab
from seqlm.ngram import fit_sentence_model, write_arpa
from seqlm.ngram.baseline import model_outputs, orders_csv, run_baseline, save_models
from seqlm.ngram.baseline_sharded import check_whole
from seqlm.ngram.sentences import SentenceVocab
from seqlm.params import CleanParams, GenerateParams, NgramParams, TokenizeParams, load_section
from seqlm.sampling import TextFormat, text_reading

SAMPLES = "samples.txt"
ARGUMENTS = {
    "--vocab": "vocabulary TSV",
    "--corpus-dir": "the corpus stage's folder of split ids",
    "--tokens-dir": "the tokenize stage's folder",
    "--out-dir": "folder for the model (model.npz), {val,test}_logprobs.npy and samples.txt "
    "(and dynamic/ with the same for ngram.dynamic)",
    "--metrics": "metrics JSON (order, smoothing, per-split scores)",
    "--orders": "CSV of val perplexity per order tried",
    "--arpa": "optional: also write the sentence-mode model of the chosen order as ARPA",
}


def body(args: argparse.Namespace) -> None:
    out_dir = Path(args.out_dir)
    outputs = [args.metrics, args.orders, out_dir / SAMPLES]
    outputs += model_outputs(out_dir) + ([args.arpa] if args.arpa else [])
    remove_outputs(*outputs)
    params = load_section(NgramParams, "ngram", args.params)
    gen = load_section(GenerateParams, "generate", args.params)
    tok = load_section(TokenizeParams, "tokenize", args.params)
    fmt = TextFormat.of(load_section(CleanParams, "clean", args.params), tok, args.tokens_dir)
    if args.arpa and params.smoothing != "kneser_ney":
        raise ParamError(f"--arpa needs ngram.smoothing = kneser_ney, not {params.smoothing!r}")
    vocab = load_vocab(args.vocab)
    splits = {s: load_split(args.corpus_dir, args.tokens_dir, s, tok) for s in SPLITS}

    try:  # all or nothing: a failure part-way removes what was already written
        result = run_baseline(params, gen, vocab, splits, fmt, worker_count(), out_dir)
        write_text(out_dir / SAMPLES, result.samples)
        save_models(result, vocab, text_reading(fmt), out_dir)
        if args.arpa:
            check_whole(result, params)
            train_lines = read_token_file(tokens_path(args.tokens_dir, "train"), tok.token)
            sentence_model = fit_sentence_model(
                train_lines, vocab, result.model.order, params.prune
            )
            write_arpa(sentence_model, SentenceVocab(vocab).arpa_names(), args.arpa)
        write_text(args.orders, orders_csv(result.orders))
        write_json(args.metrics, result.metrics())
    except BaseException:
        remove_outputs(*outputs)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__)
    for flag, what in ARGUMENTS.items():
        ap.add_argument(flag, required=flag != "--arpa", help=what)
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
