"""Stage ``evaluate``: score the best checkpoint on val and test, mix with the n-gram, evaluate it
dynamically, fit an ensemble of every member on val, write samples and a 2-D map of the token
embeddings."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from seqlm.core.atomic import remove_outputs, write_json, write_text
from seqlm.core.errors import DataError, ParamError
from seqlm.core.stage import parser, run_stage
from seqlm.core.threads import limit_threads
from seqlm.data.corpus import SplitData, load_split
from seqlm.data.vocab import Vocab, load_vocab
from seqlm.lm.load import ensemble_manifest
from seqlm.mixture import apply_mixture, fit_mixture
from seqlm.neural.checkpoint import load_checkpoint
from seqlm.neural.dynamic import DynamicResult, check_dynamic, choose_on_val
from seqlm.neural.embeddings import embedding_map_csv, embedding_matrix, embedding_pca
from seqlm.neural.evaluation import score
from seqlm.neural.generate import generate_samples, samples_markdown
from seqlm.neural.models import NeuralLM, count_parameters
from seqlm.neural.precision import resolve_device
from seqlm.ngram.store import MODEL_FILE
from seqlm.params import (
    CleanParams,
    EvaluateParams,
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
    outputs = [args.metrics, args.samples, args.bpc_table, args.embeddings]
    remove_outputs(*outputs, *([args.ensemble] if args.ensemble else []))
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
    ev = load_section(EvaluateParams, "evaluate", args.params)
    members = {"ngram": ngram, model_name: {s: neural[s][1] for s in SCORED}}
    bits_per_char = {
        model_name: [neural[s][0].bits_per_char for s in SCORED],
        "ngram": [score_logprobs(splits[s], ngram[s]).bits_per_char for s in SCORED],
        f"{model_name}+ngram": [mixed[s].bits_per_char for s in SCORED],
    }
    dyn = dynamic(model, splits, vocab.id_of("<bos>"), ev)
    if dyn is not None:
        metrics["dynamic"] = dynamic_record(dyn)
        members[f"{model_name}-dynamic"] = dyn.logprobs
        bits_per_char[f"{model_name}-dynamic"] = [dyn.scores[s].bits_per_char for s in SCORED]
    members |= extra_members(args.members_dir, ev.members, vocab, splits, device)
    weights, ensemble = fit_ensemble(members, splits)
    metrics["ensemble"] = {"members": weights, **{s: ensemble[s].to_record() for s in SCORED}}
    bits_per_char["ensemble"] = [ensemble[s].bits_per_char for s in SCORED]
    write_json(args.metrics, metrics)
    if args.ensemble:
        files = member_files(args, model_name, ev.members, dyn)
        write_json(
            args.ensemble,
            ensemble_manifest(
                args.ensemble, [{**files[n], "name": n, "weight": w} for n, w in weights.items()]
            ),
        )
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


def dynamic(
    model: NeuralLM, splits: dict[str, SplitData], bos_id: int, ev: EvaluateParams
) -> DynamicResult | None:
    """Dynamic evaluation with the lr and decay chosen on val, or None (off, or not possible)."""
    if not ev.dynamic:
        return None
    try:
        check_dynamic(model)
    except ParamError as e:
        log.warning("dynamic evaluation skipped: %s", e)
        return None
    result = choose_on_val(
        model,
        splits,
        bos_id,
        lrs=ev.dynamic_lrs,
        decays=ev.dynamic_decays,
        segment=ev.dynamic_segment,
        update=ev.dynamic_update,
    )
    log.info(
        "dynamic evaluation (%s), lr %g decay %g chosen on val among %d: val %.4f, test %.4f (%.1f s)",
        result.update,
        result.lr,
        result.decay,
        len(result.grid),
        result.scores["val"].perplexity,
        result.scores["test"].perplexity,
        result.seconds,
    )
    return result


def dynamic_record(result: DynamicResult) -> dict[str, object]:
    """``metrics/eval.json``'s ``dynamic``: the update, the chosen lr and decay, val and test, and
    the seconds the grid and test took."""
    return {
        "lr": result.lr,
        "decay": result.decay,
        "segment": result.segment,
        "update": result.update,
        "seconds": result.seconds,
        **{s: result.scores[s].to_record() for s in SCORED},
    }


def extra_members(
    members_dir: str | None,
    names: Sequence[str],
    vocab: Vocab,
    splits: dict[str, SplitData],
    device: torch.device,
) -> dict[str, dict[str, np.ndarray]]:
    """Each extra checkpoint ``<members_dir>/<name>.pt``'s log-probabilities of val and test, as
    ensemble member ``extra-<name>`` (refused unless trained on this vocabulary)."""
    if names and not members_dir:
        raise ParamError("evaluate.members names extra checkpoints but no --members-dir was given")
    scored: dict[str, dict[str, np.ndarray]] = {}
    for name in names:
        path = Path(str(members_dir)) / f"{name}.pt"
        model, info = load_checkpoint(path, vocab, device=device)
        scored[f"extra-{name}"] = {
            s: score(model, splits[s], vocab.id_of("<bos>"))[1] for s in SCORED
        }
        log.info("extra member %s: a %s from epoch %d", path, info.model, info.epoch)
    return scored


def member_files(
    args: argparse.Namespace, model_name: str, extra: Sequence[str], dyn: DynamicResult | None
) -> dict[str, dict[str, object]]:
    """Where each ensemble member's model is (and how the dynamic member adapts), by name."""
    files: dict[str, dict[str, object]] = {
        "ngram": {"path": str(Path(args.ngram_dir) / MODEL_FILE)},
        model_name: {"path": args.checkpoint},
    }
    if dyn is not None:
        settings = {"lr": dyn.lr, "decay": dyn.decay, "segment": dyn.segment, "update": dyn.update}
        files[f"{model_name}-dynamic"] = {"path": args.checkpoint, "dynamic": settings}
    for name in extra:
        files[f"extra-{name}"] = {"path": str(Path(str(args.members_dir)) / f"{name}.pt")}
    return files


def fit_ensemble(
    members: dict[str, dict[str, np.ndarray]], splits: dict[str, SplitData]
) -> tuple[dict[str, float], dict[str, SplitScore]]:
    """The members' weights fitted by EM on val only, and the mixture's score on each split."""
    weights = fit_mixture({name: lp["val"] for name, lp in members.items()})
    mixed = {
        s: score_logprobs(
            splits[s], apply_mixture({name: lp[s] for name, lp in members.items()}, weights)
        )
        for s in SCORED
    }
    log.info(
        "ensemble fitted on val (%s): val %.4f, test %.4f",
        ", ".join(f"{name} {w:.3f}" for name, w in weights.items()),
        mixed["val"].perplexity,
        mixed["test"].perplexity,
    )
    return weights, mixed


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
        help="CSV of val/test bits per character of the model, the n-gram and the mixtures",
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
    ap.add_argument(
        "--ensemble",
        default=None,
        help="where to write the fitted ensemble (its members' files and weights) for seqlm.load",
    )
    ap.add_argument(
        "--members-dir",
        default=None,
        help="folder of the extra ensemble members evaluate.members names (<name>.pt)",
    )
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
