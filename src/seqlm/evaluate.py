"""The evaluate stage's logic: score the best checkpoint on val and test, mix it with the n-gram,
evaluate it dynamically, fit an ensemble of every member on val, write samples and a 2-D map of the
token embeddings (:func:`run_evaluation`, which returns everything the stage writes).

Every quantity chosen here is chosen on **val** only — the interpolation weight, dynamic
evaluation's learning rate and decay, the ensemble's weights — and then applied to test
(``tests/test_blind_to_test.py`` checks it). Every mixture is fitted by one solver, EM over any
number of members (:mod:`seqlm.mixture`); the interpolation is its two-member case.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from seqlm.core.errors import DataError, ParamError
from seqlm.data.corpus import SplitData, load_split
from seqlm.data.vocab import Vocab
from seqlm.mixture import apply_mixture, fit_mixture
from seqlm.neural.checkpoint import load_checkpoint
from seqlm.neural.dynamic import DynamicResult, check_dynamic, choose_on_val, progress_bar
from seqlm.neural.embeddings import embedding_map_csv, embedding_matrix, embedding_pca
from seqlm.neural.evaluation import score
from seqlm.neural.generate import generate_samples, samples_markdown
from seqlm.neural.models import NeuralLM, count_parameters
from seqlm.neural.precision import resolve_device
from seqlm.ngram.dynamic import dynamic_dir, read_adaptation
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
    bits_per_char_csv,
    bits_row,
    load_target_logprobs,
    score_logprobs,
)
from seqlm.sampling import TextFormat

log = logging.getLogger("seqlm.stages.evaluate")

NGRAM_SAMPLES = "samples.txt"
SCORED = ("val", "test")


@dataclass(frozen=True)
class EvaluationFiles:
    """What the stage reads: the data stages' outputs, the checkpoint, the n-gram stage's folder
    and the extra members' folder."""

    vocab: Vocab
    corpus_dir: str
    tokens_dir: str
    checkpoint: str
    ngram_dir: str
    members_dir: str | None = None


@dataclass(frozen=True)
class EvaluationSettings:
    """The params the stage reads."""

    model_name: str
    net: NetParams
    tokenize: TokenizeParams
    fmt: TextFormat
    generate: GenerateParams
    evaluate: EvaluateParams
    device: torch.device

    @classmethod
    def from_params(
        cls, params: str | os.PathLike[str], tokens_dir: str | os.PathLike[str] | None = None
    ) -> EvaluationSettings:
        """The settings ``params.yaml`` (at ``params``) gives the stage (a subword tokenizer is
        read from the tokenize stage's folder ``tokens_dir``)."""
        tok = load_section(TokenizeParams, "tokenize", params)
        return cls(
            model_name=load_model_name(params),
            net=load_section(NetParams, "net", params),
            tokenize=tok,
            fmt=TextFormat.of(load_section(CleanParams, "clean", params), tok, tokens_dir),
            generate=load_section(GenerateParams, "generate", params),
            evaluate=load_section(EvaluateParams, "evaluate", params),
            device=resolve_device(load_section(TrainParams, "train", params).device),
        )


@dataclass
class Evaluation:
    """Everything the stage writes."""

    metrics: dict[str, object]  # metrics/eval.json
    bits_per_char: dict[str, list[float | None]]  # system -> bits per char, per byte (val, test)
    samples: str  # metrics/samples.md
    embeddings: str  # metrics/embeddings.csv
    ensemble: list[dict[str, object]]  # each member: name, path, weight (and dynamic settings)
    neural_logprobs: dict[str, np.ndarray] = field(default_factory=dict)  # split -> (N,)

    def bits_per_char_csv(self) -> str:
        """``system,val_bits_per_char,test_bits_per_char,val_bits_per_byte,test_bits_per_byte``:
        one row per scored system."""
        return bits_per_char_csv(self.bits_per_char)


def run_evaluation(files: EvaluationFiles, settings: EvaluationSettings) -> Evaluation:
    """The whole stage in memory (see the module docstring)."""
    vocab, bos = files.vocab, files.vocab.id_of("<bos>")
    model, info = load_checkpoint(
        files.checkpoint,
        vocab,
        model_name=settings.model_name,
        net=settings.net,
        device=settings.device,
    )
    log.info(
        "checkpoint: %s from epoch %d (val perplexity %.4f at training)",
        info.model,
        info.epoch,
        info.best_val_perplexity,
    )
    splits = {
        s: load_split(files.corpus_dir, files.tokens_dir, s, settings.tokenize) for s in SCORED
    }
    start = time.perf_counter()
    scored = {s: score(model, splits[s], bos) for s in SCORED}
    seconds = time.perf_counter() - start
    static = {s: scored[s][0] for s in SCORED}  # the neural model's SplitScore per split
    neural = {s: scored[s][1] for s in SCORED}  # and its log-probability of every target
    ngram = {s: ngram_logprobs(files.ngram_dir, splits[s], neural[s]) for s in SCORED}
    name = settings.model_name
    metrics: dict[str, object] = {"model": name, "parameters": count_parameters(model)}
    for s in SCORED:
        metrics[s] = static[s].to_record()
        log.info("%s: %s", s, metrics[s])
    metrics["tokens_per_second"] = sum(static[s].tokens for s in SCORED) / seconds
    lam, mixed = interpolate(neural, ngram, splits)
    metrics["interpolation"] = {"lambda": lam, **{s: mixed[s].to_record() for s in SCORED}}
    members = {"ngram": ngram, name: neural}
    bits = {
        name: bits_row(static),
        "ngram": bits_row({s: score_logprobs(splits[s], ngram[s]) for s in SCORED}),
        f"{name}+ngram": bits_row(mixed),
    }
    if (adapted := adapted_ngram(files.ngram_dir, splits, neural)) is not None:
        members["ngram-dynamic"] = adapted
        bits["ngram-dynamic"] = bits_row({s: score_logprobs(splits[s], adapted[s]) for s in SCORED})
    dyn = dynamic(model, splits, bos, settings.evaluate)
    if dyn is not None:
        metrics["dynamic"] = dynamic_record(dyn)
        members[f"{name}-dynamic"] = dyn.logprobs
        bits[f"{name}-dynamic"] = bits_row(dyn.scores)
    extra = settings.evaluate.members
    extras = extra_members(files.members_dir, extra, vocab, splits, settings)
    members |= extras.logprobs
    if extras.dynamic:
        metrics["members_dynamic"] = {n: dynamic_record(r) for n, r in extras.dynamic.items()}
    weights, ensemble = fit_ensemble(members, splits)
    metrics["ensemble"] = {"members": weights, **{s: ensemble[s].to_record() for s in SCORED}}
    bits["ensemble"] = bits_row(ensemble)
    where = member_files(files, name, extra, dyn, extras.dynamic)
    return Evaluation(
        metrics=metrics,
        bits_per_char=bits,
        samples=samples_text(model, vocab, settings.fmt, settings.generate, name, files.ngram_dir),
        embeddings=embedding_map_csv(embedding_pca(embedding_matrix(model), vocab.tokens)),
        ensemble=[{**where[n], "name": n, "weight": w} for n, w in weights.items()],
        neural_logprobs=neural,
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


def adapted_ngram(
    ngram_dir: str, splits: dict[str, SplitData], neural: dict[str, np.ndarray]
) -> dict[str, np.ndarray] | None:
    """The ngram stage's dynamically evaluated model's log-probabilities of val and test
    (``ngram.dynamic``: :mod:`seqlm.ngram.dynamic`), None when it ran without one."""
    folder = dynamic_dir(ngram_dir)
    if not (folder / MODEL_FILE).is_file():
        return None
    return {s: ngram_logprobs(str(folder), splits[s], neural[s]) for s in SCORED}


def interpolate(
    neural: dict[str, np.ndarray], ngram: dict[str, np.ndarray], splits: dict[str, SplitData]
) -> tuple[float, dict[str, SplitScore]]:
    """``p = λ·p_neural + (1 − λ)·p_ngram`` with λ fitted on val only (EM, as every mixture):
    λ and each split's score."""
    weights = fit_mixture({"neural": neural["val"], "ngram": ngram["val"]})
    mixed = {
        s: score_logprobs(
            splits[s], apply_mixture({"neural": neural[s], "ngram": ngram[s]}, weights)
        )
        for s in SCORED
    }
    log.info(
        "interpolation with the n-gram, lambda %.3f on val: val %.4f, test %.4f",
        weights["neural"],
        mixed["val"].perplexity,
        mixed["test"].perplexity,
    )
    return weights["neural"], mixed


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
        tune_tokens=ev.dynamic_tune_tokens,
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
        **adapts(result),
        "seconds": result.seconds,
        **{s: result.scores[s].to_record() for s in SCORED},
    }


@dataclass
class ExtraMembers:
    """The extra checkpoints' log-probabilities by member name (``extra-<name>``, and
    ``extra-<name>-dynamic`` for each one evaluated dynamically), and those dynamic evaluations
    by checkpoint name."""

    logprobs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    dynamic: dict[str, DynamicResult] = field(default_factory=dict)


def extra_members(
    members_dir: str | None,
    names: Sequence[str],
    vocab: Vocab,
    splits: dict[str, SplitData],
    settings: EvaluationSettings,
) -> ExtraMembers:
    """Each extra checkpoint ``<members_dir>/<name>.pt``'s log-probabilities of val and test, as
    ensemble member ``extra-<name>`` (refused unless trained on this vocabulary), and, when
    ``evaluate.dynamic`` is on and it reads a stream, its dynamic evaluation (its own lr and decay
    chosen on val) as ``extra-<name>-dynamic``."""
    if names and not members_dir:
        raise ParamError("evaluate.members names extra checkpoints but no --members-dir was given")
    out, bos = ExtraMembers(), vocab.id_of("<bos>")
    tokens = sum(int(splits[s].ids.size) for s in SCORED)
    for name in names:
        path = Path(str(members_dir)) / f"{name}.pt"
        model, info = load_checkpoint(path, vocab, device=settings.device)
        log.info("extra member %s: a %s from epoch %d", path, info.model, info.epoch)
        bar = progress_bar(f"member {name}", tokens)
        out.logprobs[f"extra-{name}"] = {}
        for s in SCORED:
            out.logprobs[f"extra-{name}"][s] = score(model, splits[s], bos)[1]
            bar.update(splits[s].ids.size)
        bar.close()
        if (adapted := dynamic(model, splits, bos, settings.evaluate)) is not None:
            out.logprobs[f"extra-{name}-dynamic"] = adapted.logprobs
            out.dynamic[name] = adapted
    return out


def member_files(
    files: EvaluationFiles,
    model_name: str,
    extra: Sequence[str],
    dyn: DynamicResult | None,
    extra_dynamic: Mapping[str, DynamicResult] | None = None,
) -> dict[str, dict[str, object]]:
    """Where each ensemble member's model is (and how the dynamic member adapts), by name."""
    entries: dict[str, dict[str, object]] = {
        "ngram": {"path": str(Path(files.ngram_dir) / MODEL_FILE)},
        model_name: {"path": str(files.checkpoint)},
    }
    if dyn is not None:
        entries[f"{model_name}-dynamic"] = {"path": str(files.checkpoint), "dynamic": adapts(dyn)}
    adapting = dynamic_dir(files.ngram_dir) / MODEL_FILE
    if (adapt := read_adaptation(adapting)) is not None:
        entries["ngram-dynamic"] = {"path": str(adapting), "dynamic": adapt.record()}
    for name in extra:
        path = str(Path(str(files.members_dir)) / f"{name}.pt")
        entries[f"extra-{name}"] = {"path": path}
        if extra_dynamic and name in extra_dynamic:
            entries[f"extra-{name}-dynamic"] = {
                "path": path,
                "dynamic": adapts(extra_dynamic[name]),
            }
    return entries


def adapts(result: DynamicResult) -> dict[str, object]:
    """How a dynamic member adapts, as ``ensemble.json`` records it."""
    return {
        "lr": result.lr,
        "decay": result.decay,
        "segment": result.segment,
        "update": result.update,
    }


def fit_ensemble(
    members: dict[str, dict[str, np.ndarray]], splits: dict[str, SplitData]
) -> tuple[dict[str, float], dict[str, SplitScore]]:
    """The members' weights fitted by EM on val only, and the mixture's score on each split."""
    start = time.perf_counter()
    weights = fit_mixture({name: lp["val"] for name, lp in members.items()})
    log.info(
        "ensemble: %d members' weights fitted by EM on %d val targets in %.1f s",
        len(members),
        int(splits["val"].ids.size),
        time.perf_counter() - start,
    )
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
