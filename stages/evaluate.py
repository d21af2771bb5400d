"""Stage ``evaluate``: score the best checkpoint on val and test, mix with the n-gram, write samples."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from seqlm.core.atomic import remove_outputs, write_json, write_text
from seqlm.neural.checkpoint import load_checkpoint
from seqlm.core.stage import parser, run_stage
from seqlm.params import load_section
from seqlm.data.corpus import load_split
from seqlm.core.errors import DataError
from seqlm.neural.generate import generate_samples, samples_markdown
from seqlm.params import GenerateParams
from seqlm.neural.models import NetParams, count_parameters, load_model_name
from seqlm.neural.evaluation import score
from seqlm.perplexity import (
    best_mixture_weight,
    load_target_logprobs,
    mix_logprobs,
    save_target_logprobs,
    score_split,
)
from seqlm.data.tokens import TokenizeParams
from seqlm.data.vocab import load_vocab

log = logging.getLogger("seqlm.stages.evaluate")

NGRAM_SAMPLES = "samples.txt"


def body(args: argparse.Namespace) -> None:
    remove_outputs(args.metrics, args.samples, args.bpc_table)
    model_name = load_model_name(args.params)
    net = load_section(NetParams, "net", args.params)
    token = load_section(TokenizeParams, "tokenize", args.params).token
    gen = load_section(GenerateParams, "generate", args.params)
    vocab = load_vocab(args.vocab)
    model, info = load_checkpoint(args.checkpoint, vocab, model_name=model_name, net=net)
    bos_id = vocab.id_of("<bos>")
    log.info("checkpoint: %s from epoch %d (val perplexity %.4f at training)",
             info.model, info.epoch, info.best_val_perplexity)

    metrics: dict[str, object] = {"model": model_name, "parameters": count_parameters(model)}
    neural, ngram = {}, {}
    scored_tokens, start = 0, time.perf_counter()
    for split_name in ("val", "test"):
        split = load_split(args.corpus_dir, args.tokens_dir, split_name, token)
        result, neural[split_name] = score(model, split, bos_id)
        scored_tokens += result.tokens
        metrics[split_name] = result.to_record()
        log.info("%s: %s", split_name, result.to_record())
        if args.logprobs_dir:
            save_target_logprobs(args.logprobs_dir, split_name, neural[split_name])
        ngram[split_name] = (load_target_logprobs(args.ngram_dir, split_name), split)
        if ngram[split_name][0].shape != neural[split_name].shape:
            raise DataError(
                f"the n-gram scored {ngram[split_name][0].size} {split_name} targets, the neural model "
                f"{neural[split_name].size}; rerun the ngram stage on the same data"
            )
    metrics["tokens_per_second"] = scored_tokens / (time.perf_counter() - start)

    # p = λ·p_neural + (1 − λ)·p_ngram, λ chosen on val only
    lam = best_mixture_weight(neural["val"], ngram["val"][0])
    interpolation: dict[str, object] = {"lambda": lam}
    for split_name in ("val", "test"):
        lp_ngram, split = ngram[split_name]
        mixed = mix_logprobs(neural[split_name], lp_ngram, lam)
        interpolation[split_name] = score_split(mixed, split.characters, split.oov).to_record()
    metrics["interpolation"] = interpolation
    log.info("interpolation with the n-gram, lambda %.3f on val: val %.4f, test %.4f", lam,
             interpolation["val"]["perplexity"], interpolation["test"]["perplexity"])  # type: ignore[index]
    write_json(args.metrics, metrics)
    ngram_metrics = {s: score_split(ngram[s][0], ngram[s][1].characters, ngram[s][1].oov) for s in ("val", "test")}
    write_text(args.bpc_table, bits_per_char_csv([
        (model_name, metrics["val"], metrics["test"]),  # type: ignore[arg-type]
        ("ngram", ngram_metrics["val"].to_record(), ngram_metrics["test"].to_record()),
        (f"{model_name}+ngram", interpolation["val"], interpolation["test"]),  # type: ignore[arg-type]
    ]))

    ngram_samples = Path(args.ngram_dir) / NGRAM_SAMPLES
    if not ngram_samples.is_file():
        raise DataError(f"the n-gram stage's samples {str(ngram_samples)!r} are missing; rerun it")
    samples = generate_samples(model, vocab, token, gen)
    text = (
        f"# Samples\n\nSettings: length {gen.length}, temperature {gen.temperature:g}, "
        f"top-k {gen.top_k or 'off'}, seed {gen.seed}.\n\n"
        + samples_markdown(f"Neural model ({model_name})", samples, token)
        + f"\n## n-gram baseline ({ngram_samples})\n\n```text\n"
        + ngram_samples.read_text(encoding="utf-8").rstrip("\n")
        + "\n```\n"
    )
    write_text(args.samples, text)


def bits_per_char_csv(rows: list[tuple[str, dict, dict]]) -> str:
    """``system,val_bits_per_char,test_bits_per_char``: one row per scored system (a DVC bar plot)."""
    lines = ["system,val_bits_per_char,test_bits_per_char"]
    lines += [f"{name},{val['bits_per_char']:.6f},{test['bits_per_char']:.6f}" for name, val, test in rows]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--vocab", required=True, help="vocabulary TSV")
    ap.add_argument("--corpus-dir", required=True, help="the corpus stage's folder of split ids")
    ap.add_argument("--tokens-dir", required=True, help="the tokenize stage's folder")
    ap.add_argument("--checkpoint", required=True, help="the train stage's checkpoint (.pt)")
    ap.add_argument("--ngram-dir", required=True, help="the ngram stage's folder ({split}_logprobs.npy, samples.txt)")
    ap.add_argument("--metrics", required=True, help="evaluation JSON")
    ap.add_argument("--samples", required=True, help="Markdown file of generated text")
    ap.add_argument("--bpc-table", required=True,
                    help="CSV of val/test bits per character of the model, the n-gram and their mixture")
    ap.add_argument("--logprobs-dir", default=None,
                    help="optional folder for the neural model's {split}_logprobs.npy")
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
