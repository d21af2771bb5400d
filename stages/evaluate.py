"""Stage ``evaluate``: score the best checkpoint on val and test, mix with the n-gram, write samples
and a 2-D map of the token embeddings."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from seqlm.core.atomic import remove_outputs, write_json, write_text
from seqlm.core.errors import DataError
from seqlm.core.stage import parser, run_stage
from seqlm.core.threads import limit_threads
from seqlm.data.corpus import SplitData, load_split
from seqlm.data.vocab import Vocab, load_vocab
from seqlm.neural.checkpoint import load_checkpoint
from seqlm.neural.embeddings import embedding_map_csv, embedding_matrix, embedding_pca
from seqlm.neural.evaluation import score
from seqlm.neural.generate import generate_samples, samples_markdown
from seqlm.neural.models import NeuralLM, count_parameters
from seqlm.neural.precision import resolve_device
from seqlm.params import (
    CleanParams,
    GenerateParams,
    NetParams,
    TokenizeParams,
    TrainParams,
    load_model_name,
    load_section,
)
from seqlm.perplexity import (
    SplitScore,
    best_mixture_weight,
    load_target_logprobs,
    mix_logprobs,
    save_target_logprobs,
    score_logprobs,
)
from seqlm.sampling import TextFormat

log = logging.getLogger("seqlm.stages.evaluate")

NGRAM_SAMPLES = "samples.txt"
SCORED = ("val", "test")


def body(args: argparse.Namespace) -> None:
    remove_outputs(args.metrics, args.samples, args.bpc_table, args.embeddings)
    limit_threads()  # SEQLM_THREADS / OMP_NUM_THREADS (the stage has no train.threads)
    model_name = load_model_name(args.params)
    net = load_section(NetParams, "net", args.params)
    tok = load_section(TokenizeParams, "tokenize", args.params)
    fmt = TextFormat.of(load_section(CleanParams, "clean", args.params), tok)
    gen = load_section(GenerateParams, "generate", args.params)
    vocab = load_vocab(args.vocab)
    device = resolve_device(load_section(TrainParams, "train", args.params).device)
    model, info = load_checkpoint(
        args.checkpoint, vocab, model_name=model_name, net=net, device=device
    )
    log.info(
        "checkpoint: %s from epoch %d (val perplexity %.4f at training)",
        info.model,
        info.epoch,
        info.best_val_perplexity,
    )

    splits = {s: load_split(args.corpus_dir, args.tokens_dir, s, tok) for s in SCORED}
    start = time.perf_counter()
    neural = {s: score(model, splits[s], vocab.id_of("<bos>")) for s in SCORED}
    seconds = time.perf_counter() - start
    ngram = {s: ngram_logprobs(args.ngram_dir, splits[s], neural[s][1]) for s in SCORED}
    metrics: dict[str, object] = {"model": model_name, "parameters": count_parameters(model)}
    for s in SCORED:
        metrics[s] = neural[s][0].to_record()
        log.info("%s: %s", s, metrics[s])
        if args.logprobs_dir:
            save_target_logprobs(args.logprobs_dir, s, neural[s][1])
    metrics["tokens_per_second"] = sum(neural[s][0].tokens for s in SCORED) / seconds
    lam, mixed = interpolate({s: neural[s][1] for s in SCORED}, ngram, splits)
    metrics["interpolation"] = {"lambda": lam, **{s: mixed[s].to_record() for s in SCORED}}
    write_json(args.metrics, metrics)
    bits_per_char = {
        model_name: [neural[s][0].bits_per_char for s in SCORED],
        "ngram": [score_logprobs(splits[s], ngram[s]).bits_per_char for s in SCORED],
        f"{model_name}+ngram": [mixed[s].bits_per_char for s in SCORED],
    }
    write_text(args.bpc_table, bits_per_char_csv(bits_per_char))
    write_text(args.samples, samples_text(model, vocab, fmt, gen, model_name, args.ngram_dir))
    write_text(
        args.embeddings, embedding_map_csv(embedding_pca(embedding_matrix(model), vocab.tokens))
    )


def ngram_logprobs(ngram_dir: str, split: SplitData, neural: np.ndarray) -> np.ndarray:
    """The n-gram stage's log-probabilities of the split's targets, checked against the neural ones."""
    lp = load_target_logprobs(ngram_dir, split.name)
    if lp.shape != neural.shape:
        raise DataError(
            f"the n-gram scored {lp.size} {split.name} targets, the neural model "
            f"{neural.size}; rerun the ngram stage on the same data"
        )
    return lp


def interpolate(
    neural: dict[str, np.ndarray], ngram: dict[str, np.ndarray], splits: dict[str, SplitData]
) -> tuple[float, dict[str, SplitScore]]:
    """``p = λ·p_neural + (1 − λ)·p_ngram`` with λ chosen on val only: λ and each split's score."""
    lam = best_mixture_weight(neural["val"], ngram["val"])
    mixed = {s: score_logprobs(splits[s], mix_logprobs(neural[s], ngram[s], lam)) for s in SCORED}
    log.info(
        "interpolation with the n-gram, lambda %.3f on val: val %.4f, test %.4f",
        lam,
        mixed["val"].perplexity,
        mixed["test"].perplexity,
    )
    return lam, mixed


def samples_text(
    model: NeuralLM,
    vocab: Vocab,
    fmt: TextFormat,
    gen: GenerateParams,
    model_name: str,
    ngram_dir: str,
) -> str:
    """``metrics/samples.md``: the neural model's samples, then the n-gram stage's."""
    ngram_samples = Path(ngram_dir) / NGRAM_SAMPLES
    if not ngram_samples.is_file():
        raise DataError(f"the n-gram stage's samples {str(ngram_samples)!r} are missing; rerun it")
    samples = generate_samples(model, vocab, fmt, gen)
    return (
        f"# Samples\n\nSettings: length {gen.length}, temperature {gen.temperature:g}, "
        f"top-k {gen.top_k or 'off'}, seed {gen.seed}.\n\n"
        + samples_markdown(f"Neural model ({model_name})", samples, fmt)
        + f"\n## n-gram baseline ({ngram_samples})\n\n```text\n"
        + ngram_samples.read_text(encoding="utf-8").rstrip("\n")
        + "\n```\n"
    )


def bits_per_char_csv(systems: dict[str, list[float]]) -> str:
    """``system,val_bits_per_char,test_bits_per_char``: one row per scored system (a DVC bar plot)."""
    table = pd.DataFrame.from_dict(
        systems, orient="index", columns=["val_bits_per_char", "test_bits_per_char"]
    )
    return table.rename_axis("system").to_csv(float_format="%.6f", lineterminator="\n")


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--vocab", required=True, help="vocabulary TSV")
    ap.add_argument("--corpus-dir", required=True, help="the corpus stage's folder of split ids")
    ap.add_argument("--tokens-dir", required=True, help="the tokenize stage's folder")
    ap.add_argument("--checkpoint", required=True, help="the train stage's checkpoint (.pt)")
    ap.add_argument(
        "--ngram-dir",
        required=True,
        help="the ngram stage's folder ({split}_logprobs.npy, samples.txt)",
    )
    ap.add_argument("--metrics", required=True, help="evaluation JSON")
    ap.add_argument("--samples", required=True, help="Markdown file of generated text")
    ap.add_argument(
        "--bpc-table",
        required=True,
        help="CSV of val/test bits per character of the model, the n-gram and their mixture",
    )
    ap.add_argument(
        "--embeddings",
        required=True,
        help="CSV of the 2-D PCA map of the token embeddings (token, x, y; a DVC plot)",
    )
    ap.add_argument(
        "--logprobs-dir",
        default=None,
        help="optional folder for the neural model's {split}_logprobs.npy",
    )
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
