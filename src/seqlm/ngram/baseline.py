"""The ngram stage's logic: pick the order on val, score every split, sample text.

Stream mode throughout (the project's perplexity convention, :mod:`seqlm.perplexity`): the model is
counted on ``<bos> + train stream`` and each split is scored on its own from ``<bos>``.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from seqlm.core.logs import progress_disabled
from seqlm.core.workers import iter_spans
from seqlm.data.corpus import SplitData
from seqlm.data.vocab import BOS, Vocab
from seqlm.ngram import count_stream, fit_ngram
from seqlm.ngram.baseline_sharded import run_sharded
from seqlm.ngram.counting import chunks
from seqlm.ngram.counts import NgramCounts
from seqlm.ngram.dynamic import dynamic_dir, run_dynamic
from seqlm.ngram.kneser_ney import KneserNeyModel
from seqlm.ngram.memory import MemoryPlan, TablesTooLarge, check_cap
from seqlm.ngram.model import SCORE_CHUNK, NgramModel
from seqlm.ngram.outcome import BaselineResult, OrderScore, sample_texts
from seqlm.ngram.sharded_store import ShardedKneserNey
from seqlm.ngram.store import MODEL_FILE, save_ngram
from seqlm.params import GenerateParams, NgramParams
from seqlm.perplexity import (
    LogprobsWriter,
    SplitScore,
    logprobs_path,
    part_nll,
    score_model,
    score_model_parts,
    score_of_nll,
)
from seqlm.sampling import TextFormat, text_format

log = logging.getLogger(__name__)

ORDERS_HEADER = ("order", "val_perplexity", "val_bits_per_char")


def search_order(
    params: NgramParams, train: SplitData, val: SplitData, vocab: Vocab
) -> tuple[int, list[OrderScore]]:
    """Fit every order ``params`` allows and return the one with the lowest val perplexity."""
    return search_counted(params, count_train(params, train, vocab), val)


def count_train(
    params: NgramParams,
    train: SplitData,
    vocab: Vocab,
    workers: int = 1,
    spill_dir: str | os.PathLike[str] | None = None,
) -> NgramCounts:
    """The train stream's n-grams up to the highest order ``params`` needs (counted once, over
    ``workers`` processes, spilling to ``spill_dir``, within ``ngram.memory_mb``)."""
    plan = memory_plan(params, vocab, workers)
    spill = Path(spill_dir) if spill_dir is not None else None
    ids, bos = train.ids, vocab.id_of(BOS)
    return count_stream(ids, len(vocab), plan.max_order, bos, workers, spill, plan)


def memory_plan(params: NgramParams, vocab: Vocab, workers: int) -> MemoryPlan:
    """``ngram.memory_mb`` shared for this run (refused below the vocabulary's minimum)."""
    check_cap(params.memory_mb, len(vocab))
    return MemoryPlan(params.memory_mb, workers, params.counted_order())


def search_counted(
    params: NgramParams, counts: NgramCounts, val: SplitData
) -> tuple[int, list[OrderScore]]:
    """:func:`search_order` from counts already made."""
    orders = params.orders_to_try()
    rows = []
    bar = tqdm(orders, desc="ngram orders", unit="order", disable=progress_disabled())
    for order in bar:
        model = fit_ngram(counts, order, params.smoothing, params.laplace_alpha, params.prune)
        s = score_model_parts(model.target_logprob_parts, val)
        rows.append(OrderScore(order, s.perplexity, s.bits_per_char))
        bar.set_postfix(order=order, val_ppl=f"{s.perplexity:.4f}")
        log.debug("order %d: val perplexity %.4f", order, s.perplexity)
    bar.close()
    best = min(rows, key=lambda r: (r.val_perplexity, r.order))  # ties: the smaller model
    log.info(
        "val perplexity by order: %s",
        ", ".join(f"{r.order}: {r.val_perplexity:.4f}" for r in rows),
    )
    return best.order, rows


def orders_csv(rows: list[OrderScore]) -> str:
    """The order search as CSV, one row per order tried (a DVC plot)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(ORDERS_HEADER)
    for r in rows:
        w.writerow([r.order, f"{r.val_perplexity:.6f}", f"{r.val_bits_per_char:.6f}"])
    return buf.getvalue()


@dataclass(frozen=True)
class ChunkLogprobs:
    """The log-probabilities of one scoring chunk of a split's targets (a pass for
    :func:`seqlm.core.workers.iter_spans`; the values do not depend on where it runs)."""

    model: NgramModel
    ids: np.ndarray

    def __call__(self, start: int, stop: int) -> np.ndarray:
        return next(self.model.target_logprob_parts(self.ids, stop - start, start, stop))


def score_streamed(
    model: NgramModel,
    split: SplitData,
    workers: int = 1,
    save_to: str | os.PathLike[str] | None = None,
    chunk: int | None = None,
) -> SplitScore:
    """A split's score holding one chunk of its log-probabilities at a time: the chunks
    (``chunk`` targets, default :data:`SCORE_CHUNK`) are scored over ``workers`` processes and
    taken in order (the same floats whatever ``workers`` and ``chunk``), written to ``save_to``'s
    ``<split>_logprobs.npy`` when given, with a progress bar in tokens."""
    ids = split.ids
    for k in range(2, model.order + 1):  # built once here, inherited by the workers
        model.counts.dense_ranks(k)
    spans = list(chunks(int(ids.size), SCORE_CHUNK if chunk is None else chunk))
    bar = tqdm(total=int(ids.size), desc=f"ngram scoring {split.name}", unit="tok",
               unit_scale=True, disable=progress_disabled())  # fmt: skip
    with ExitStack() as stack:
        writer = None
        if save_to is not None:
            writer = stack.enter_context(LogprobsWriter(save_to, split.name, int(ids.size)))
        nll = 0.0
        for (a, b), part in zip(spans, iter_spans(ChunkLogprobs(model, ids), spans, workers)):
            nll += part_nll(part, a)
            if writer is not None:
                writer.write(part)
            bar.update(b - a)
    bar.close()
    return score_of_nll(nll, int(ids.size), split.characters, split.oov, split.bytes, split.words)


def score_splits(
    model: NgramModel,
    splits: dict[str, SplitData],
    workers: int,
    logprobs_dir: str | os.PathLike[str] | None,
    chunk: int | None = None,
) -> tuple[dict[str, SplitScore], dict[str, np.ndarray]]:
    """Every split's score (``chunk`` targets at a time); val's and test's log-probabilities (the
    evaluate stage mixes them) written to ``logprobs_dir`` chunk by chunk, or returned when it is
    None."""
    scores, logprobs = {}, {}
    for split in ("val", "test"):
        if logprobs_dir is not None:
            scores[split] = score_streamed(model, splits[split], workers, logprobs_dir, chunk)
        else:
            scores[split], logprobs[split] = score_model(model.target_logprobs, splits[split])
    scores["train"] = score_train(model, splits["train"], workers, chunk)
    return scores, logprobs


def score_train(
    model: NgramModel, train: SplitData, workers: int, chunk: int | None = None
) -> SplitScore:
    """The train split's score: from the model's own tables when it can give it (an unpruned
    Kneser-Ney model of the train stream: no pass over the split), else streamed."""
    nll = None
    if isinstance(model, KneserNeyModel) and model.counts.tokens == train.ids.size:
        nll = model.training_stream_nll()
    if nll is None:
        return score_streamed(model, train, workers, chunk=chunk)
    t = train
    return score_of_nll(nll, int(t.ids.size), t.characters, t.oov, t.bytes, t.words)


def run_baseline(
    params: NgramParams,
    gen: GenerateParams,
    vocab: Vocab,
    splits: dict[str, SplitData],
    fmt: TextFormat | str,
    workers: int = 1,
    logprobs_dir: str | os.PathLike[str] | None = None,
) -> BaselineResult:
    """The whole stage: order search, final fit, scores, log-probabilities, samples (counting and
    scoring over ``workers`` processes). Val's and test's log-probabilities are written to
    ``logprobs_dir`` chunk by chunk when it is given (counting spills there too, in a temporary
    folder), else kept in the result."""
    f = text_format(fmt)
    sizes = [f"{s}: {d.ids.size} tokens, {d.characters} characters, {d.oov} <unk>"
             for s, d in splits.items()]  # fmt: skip
    log.info("%s tokens (line_end %s), vocabulary of %d; %s", f.token, f.line_end, len(vocab),
             "; ".join(sizes))  # fmt: skip
    log.info("ngram params: %s", params)
    t0 = time.perf_counter()
    try:
        counts = count_train(params, splits["train"], vocab, workers, logprobs_dir)  # every order
    except TablesTooLarge as e:  # the same model, a shard at a time
        plan, out = memory_plan(params, vocab, workers), logprobs_dir
        return run_sharded(params, gen, vocab, splits, fmt, plan, out and Path(out), e)
    count_seconds = time.perf_counter() - t0
    log.info(
        "counted in %.3f s over %d process%s", count_seconds, workers, "es"[: 2 * (workers > 1)]
    )
    order, rows = search_counted(params, counts, splits["val"])
    if params.order == "auto":
        log.info("order %d has the lowest val perplexity of orders 1..%d", order, params.max_order)
    t0 = time.perf_counter()
    model = fit_ngram(counts, order, params.smoothing, params.laplace_alpha, params.prune)
    if any(params.prune):
        log.info(
            "pruned (ngram.prune %s): kept %s n-grams of orders 1..%d, of %s",
            list(params.prune),
            [model.counts.rows(k) for k in range(1, order + 1)],
            order,
            [counts.rows(k) for k in range(1, order + 1)],
        )
    fit_seconds = count_seconds + time.perf_counter() - t0
    t0 = time.perf_counter()
    chunk = memory_plan(params, vocab, workers).score_chunk
    scores, logprobs = score_splits(model, splits, workers, logprobs_dir, chunk)
    score_seconds = time.perf_counter() - t0
    n_scored = sum(splits[s].ids.size for s in scores)
    log.info(
        "fit in %.3f s; scored %d tokens in %.3f s (%.0f tokens/s)",
        fit_seconds,
        n_scored,
        score_seconds,
        n_scored / max(score_seconds, 1e-9),
    )
    for split, s in scores.items():
        log.info(
            "%s: perplexity %.4f, %.4f bits/char over %d tokens",
            split,
            s.perplexity,
            s.bits_per_char,
            s.tokens,
        )
    assert math.isclose(
        scores["val"].perplexity, next(r.val_perplexity for r in rows if r.order == order)
    )
    return BaselineResult(
        model=model,
        orders=rows,
        scores=scores,
        logprobs=logprobs,
        fit_seconds=fit_seconds,
        score_seconds=score_seconds,
        samples=sample_texts(model, vocab, fmt, gen),
        dynamic=run_dynamic(params, counts, splits, logprobs_dir),
    )


def model_outputs(out_dir: str | os.PathLike[str]) -> list[Path]:
    """The files :func:`save_models` and the scoring write in the stage's folder: the model and
    its val and test log-probabilities, and the same in :func:`seqlm.ngram.dynamic.dynamic_dir`."""
    return [
        folder / name
        for folder in (Path(out_dir), dynamic_dir(out_dir))
        for name in (
            MODEL_FILE,
            logprobs_path(folder, "val").name,
            logprobs_path(folder, "test").name,
        )
    ]


def save_models(
    result: BaselineResult, vocab: Vocab, text: dict[str, str], out_dir: str | os.PathLike[str]
) -> None:
    """The stage's model (``model.npz``) and its dynamically evaluated one, when there is one
    (``dynamic/model.npz``, with how it adapts), in ``out_dir``; a sharded model is already
    there (:mod:`seqlm.ngram.baseline_sharded` writes it as it estimates it)."""
    if isinstance(result.model, ShardedKneserNey):
        return
    save_ngram(result.model, vocab, text, Path(out_dir) / MODEL_FILE)
    if result.dynamic is not None:
        adapting = dynamic_dir(out_dir) / MODEL_FILE
        save_ngram(result.dynamic.model, vocab, text, adapting, result.dynamic.adapt.record())
