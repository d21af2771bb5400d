"""Stage ``evaluate``: score the best checkpoint on val and test, mix with the n-gram, evaluate it
dynamically, fit an ensemble of every member on val, write samples and a 2-D map of the token
embeddings (:mod:`seqlm.evaluate`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from seqlm.core.atomic import remove_outputs, write_json, write_text
from seqlm.core.stage import parser, run_stage
from seqlm.core.threads import limit_threads
from seqlm.data.vocab import load_vocab
from seqlm.evaluate import EvaluationFiles, EvaluationSettings, run_evaluation
from seqlm.lm.load import ensemble_manifest
from seqlm.perplexity import save_target_logprobs

ARGUMENTS = {
    "--vocab": "vocabulary TSV",
    "--corpus-dir": "the corpus stage's folder of split ids",
    "--tokens-dir": "the tokenize stage's folder",
    "--checkpoint": "the train stage's checkpoint (.pt)",
    "--ngram-dir": "the ngram stage's folder (model.npz, {split}_logprobs.npy, samples.txt)",
    "--metrics": "evaluation JSON",
    "--samples": "Markdown file of generated text",
    "--bpc-table": "CSV of val/test bits per character of every system scored",
    "--embeddings": "CSV of the 2-D PCA map of the token embeddings (token, x, y; a DVC plot)",
    "--logprobs-dir": "optional folder for the neural model's {split}_logprobs.npy",
    "--ensemble": "where to write the fitted ensemble (members' files, weights) for seqlm.load",
    "--members-dir": "folder of the extra ensemble members evaluate.members names (<name>.pt)",
}
OPTIONAL = ("--logprobs-dir", "--ensemble", "--members-dir")


def body(args: argparse.Namespace) -> None:
    outputs = [args.metrics, args.samples, args.bpc_table, args.embeddings]
    remove_outputs(*outputs, *([args.ensemble] if args.ensemble else []))
    # SEQLM_THREADS / OMP_NUM_THREADS (the stage has no train.threads), else a share of the cores
    limit_threads(share=True)
    settings = EvaluationSettings.from_params(args.params, args.tokens_dir)
    files = EvaluationFiles(
        load_vocab(args.vocab),
        args.corpus_dir,
        args.tokens_dir,
        args.checkpoint,
        args.ngram_dir,
        args.members_dir,
    )
    result = run_evaluation(files, settings)
    if args.logprobs_dir:
        for split, lp in result.neural_logprobs.items():
            save_target_logprobs(args.logprobs_dir, split, lp)
    write_json(args.metrics, result.metrics)
    if args.ensemble:
        write_json(args.ensemble, ensemble_manifest(args.ensemble, result.ensemble))
    write_text(args.bpc_table, result.bits_per_char_csv())
    write_text(args.samples, result.samples)
    write_text(args.embeddings, result.embeddings)


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__)
    for flag, what in ARGUMENTS.items():
        ap.add_argument(flag, required=flag not in OPTIONAL, default=None, help=what)
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
