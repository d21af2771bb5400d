"""The ngram stage when the model's tables do not fit ``ngram.memory_mb``: the same model, counted,
estimated, scored and saved shard by shard (:mod:`seqlm.ngram.sharded`), each shard's tables within
the third of the cap that the whole tables would have had (:mod:`seqlm.ngram.memory`).

What it writes is what :func:`seqlm.ngram.baseline.run_baseline` writes — the order search, the
scores, val's and test's log-probabilities (the same floats), samples — with the model as a sharded
file (:mod:`seqlm.ngram.sharded_store`). Only a Kneser-Ney model without dynamic evaluation
is sharded (pruned or not): dynamic evaluation and Laplace smoothing hold the whole tables.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from seqlm.core.errors import DataError
from seqlm.data.corpus import SplitData
from seqlm.data.vocab import BOS, Vocab
from seqlm.ngram.memory import BYTES_PER_NGRAM, MemoryPlan, TablesTooLarge
from seqlm.ngram.model import SCORE_CHUNK, NgramModel
from seqlm.ngram.outcome import BaselineResult, OrderScore, sample_texts
from seqlm.ngram.sharded import count_sharded
from seqlm.ngram.sharded_scoring import ScoreFile, score_sharded
from seqlm.ngram.sharded_store import save_sharded
from seqlm.ngram.store import MODEL_FILE, load_ngram
from seqlm.params import GenerateParams, NgramParams
from seqlm.perplexity import (
    LogprobsWriter,
    SplitScore,
    score_of_nll,
    score_split_parts,
)
from seqlm.sampling import TextFormat, text_format, text_reading

log = logging.getLogger(__name__)


def unshardable(params: NgramParams) -> str | None:
    """Why the model of ``params`` cannot be sharded (None: it can)."""
    if params.smoothing != "kneser_ney":
        return f"ngram.smoothing = {params.smoothing}"
    if params.dynamic:
        return "ngram.dynamic = true"
    return None


def check_whole(result: BaselineResult, params: NgramParams) -> None:
    """Refuse to export as ARPA a model that was sharded: the export holds the tables whole."""
    if result.sharded is not None:
        raise DataError(
            "--arpa writes the sentence-mode model from tables held whole, and this model's "
            f"tables exceed ngram.memory_mb = {params.memory_mb}: raise it to export ARPA"
        )


def split_score(file: ScoreFile, split: SplitData, chunk: int) -> SplitScore:
    """A split's score from its log-probabilities in ``file``, summed ``chunk`` at a time."""
    s = split
    return score_split_parts(file.parts(chunk), s.characters, s.oov, s.bytes, s.words)


def run_sharded(
    params: NgramParams, gen: GenerateParams, vocab: Vocab, splits: dict[str, SplitData],
    fmt: TextFormat | str, plan: MemoryPlan, out_dir: Path | None, why: TablesTooLarge,
) -> BaselineResult:  # fmt: skip
    """The stage's run with a sharded model, written to ``out_dir`` with val's and test's
    log-probabilities (``why``: the in-memory counting's refusal, said again if the model
    cannot be sharded)."""
    why = why.with_traceback(None)  # let go of the frames that counted in memory, and their tables
    reason = unshardable(params)
    if reason is not None:
        raise TablesTooLarge(
            f"{why}. With {reason} the model's tables must fit in memory; without it the stage "
            "counts the model in shards that fit"
        ) from why
    if out_dir is None:
        raise TablesTooLarge(f"{why}. Counting it in shards needs a folder for them") from why
    log.info("ngram.memory_mb = %d: %s; counting the same model in shards that fit",
             params.memory_mb, why.summary or why)  # fmt: skip
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".seqlm-shards-", dir=out_dir) as tmp:
        folder = Path(tmp)
        limit = plan.table_bytes // BYTES_PER_NGRAM
        counts = count_sharded(splits["train"].ids, len(vocab), plan.max_order, vocab.id_of(BOS),
                               folder, plan.chunk, plan.spill_bytes, limit, plan.workers,
                               plan, why.rows)  # fmt: skip
        fit_seconds = time.perf_counter() - t0
        log.info("counted in %.3f s over 1 process: %s n-grams of orders 1..%d, in %d shards "
                 "at depth %d", fit_seconds, counts.rows, plan.max_order, len(counts.files),
                 counts.depth)  # fmt: skip
        t0 = time.perf_counter()
        scored = {name: splits[name].ids for name in ("val", "test")}
        files, train_nll = score_sharded(counts, params.orders_to_try(), scored, folder,
                                         plan.score_chunk, params.prune)  # fmt: skip
        rows = []
        for n in params.orders_to_try():
            s = split_score(files[n, "val"], splits["val"], SCORE_CHUNK)
            rows.append(OrderScore(n, s.perplexity, s.bits_per_char))
        order = min(rows, key=lambda r: (r.val_perplexity, r.order)).order
        model: NgramModel = counts.bottom_model(order, params.prune)  # saved by the stage
        if order > counts.depth:
            reading = text_reading(text_format(fmt))
            save_sharded(counts, order, vocab, reading, out_dir / MODEL_FILE, params.prune)
            model = load_ngram(out_dir / MODEL_FILE)[0]
        scores = {name: saved_score(files[order, name], splits[name], out_dir, plan.score_chunk)
                  for name in scored}  # fmt: skip
        t, nll = splits["train"], train_nll[order]
        if nll is None:  # pruned, or shorter than the order: a pass over train
            train, _ = score_sharded(counts, [order], {"train": t.ids}, folder, plan.score_chunk,
                                     params.prune)  # fmt: skip
            scores["train"] = split_score(train[order, "train"], t, plan.score_chunk)
        else:
            scores["train"] = score_of_nll(nll, int(t.ids.size), t.characters, t.oov, t.bytes,
                                           t.words)  # fmt: skip
        score_seconds = time.perf_counter() - t0
    samples = sample_texts(model, vocab, fmt, gen)
    shards = {"shards": len(counts.files), "depth": counts.depth}
    return BaselineResult(model, rows, scores, {}, fit_seconds, score_seconds, samples,
                          sharded=shards)  # fmt: skip


def saved_score(file: ScoreFile, split: SplitData, out_dir: Path, chunk: int) -> SplitScore:
    """A split's score, its log-probabilities written to ``out_dir`` on the way."""
    with LogprobsWriter(out_dir, split.name, file.size) as writer:
        score = score_split_parts(writer.passing(file.parts(chunk)), split.characters, split.oov,
                                  split.bytes, split.words)  # fmt: skip
    return score
