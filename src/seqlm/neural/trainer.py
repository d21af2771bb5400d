"""The train stage's work in one process: read the data, train, log each evaluation to DVCLive,
keep a resumable state, and finish the model files (:func:`train_here`).

With several processes every rank runs :func:`train_here` (``stages/train.py`` starts them under
``torchrun``); only rank 0 logs, writes DVCLive, the checkpoint and the metrics. At every evaluation
rank 0 saves a resumable state in the state folder with a copy of the DVCLive folder; rerun after a
crash, training continues from there if the state was saved under the same params, number of
processes and data, and the state is removed once training has completed. The finished checkpoint
carries its vocabulary and text reading, with the same weights as safetensors and a JSON config
beside it, so the file alone scores and generates (``seqlm.load``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from seqlm.core.atomic import remove_outputs, write_json
from seqlm.data.corpus import load_split
from seqlm.data.vocab import load_vocab
from seqlm.neural.checkpoint import add_text_reading
from seqlm.neural.distributed import world_from_env
from seqlm.neural.export import write_portable
from seqlm.neural.loop import Evaluation, TrainResult, train
from seqlm.neural.models import check_net_for_model, load_model_name
from seqlm.neural.resume import Resume, fingerprint, folder_files, open_resume, restore_folder
from seqlm.neural.sizing import resolve_sizes
from seqlm.neural.trial import TrialChannel, TrialPruned
from seqlm.params import CleanParams, NetParams, TokenizeParams, TrainParams, load_section
from seqlm.sampling import TextFormat, text_reading

log = logging.getLogger("seqlm.stages.train")


@dataclass(frozen=True)
class TrainFiles:
    """What the train stage reads and writes (``dvc.yaml``'s paths)."""

    params: str
    vocab: str
    corpus_dir: str
    tokens_dir: str
    checkpoint: str
    metrics: str
    live_dir: str
    state_dir: str | None = None


def train_here(files: TrainFiles, params: TrainParams) -> None:
    """Train in this process (rank 0 of 1, or the rank torchrun gave it)."""
    world = world_from_env()
    if world.is_main:
        remove_outputs(files.checkpoint, files.metrics)
    else:
        logging.getLogger("seqlm").setLevel(logging.WARNING)
    model_name = load_model_name(files.params)
    net = load_section(NetParams, "net", files.params)
    tok = load_section(TokenizeParams, "tokenize", files.params)
    vocab = load_vocab(files.vocab)
    train_split = load_split(files.corpus_dir, files.tokens_dir, "train", tok)
    val_split = load_split(files.corpus_dir, files.tokens_dir, "val", tok)
    net, sizing = resolve_sizes(
        model_name, net, int(train_split.ids.size), len(vocab), params.budget_minutes
    )
    if sizing is not None:
        log.info("net sized to the corpus (net.*_size: auto): %s", sizing.describe())
    check_net_for_model(model_name, net)
    log.info("model %s, net %s", model_name, net.to_dict())
    log.info(
        "train: %s; val: %s; vocabulary of %d", train_split.stats(), val_split.stats(), len(vocab)
    )
    current = fingerprint(model_name, net, params, vocab, train_split, val_split, world.size)
    resume = open_state(files.state_dir, files.live_dir, current, world.is_main)
    resumed = resume is not None and resume.saved is not None
    with live_logger(files.live_dir, world.is_main, resumed) as live:
        if resume is not None and live is not None:
            keep_curves_with_state(resume, live, files.live_dir)
        to_live = (
            partial(log_evaluation, live, params.evaluates_within_epochs)
            if live is not None
            else None
        )
        trial = TrialChannel.from_env() if world.is_main else None
        result = train(
            model_name,
            net,
            params,
            vocab,
            train_split,
            val_split,
            checkpoint_path=files.checkpoint,
            on_evaluation=evaluation_hooks(to_live, trial.report if trial else None),
            resume=resume,
        )
    if not world.is_main:
        return
    if trial is not None and trial.pruned:
        remove_outputs(files.checkpoint, files.metrics)
        if resume is not None:
            resume.remove()  # a later run of these params starts afresh, not from the pruned state
        raise TrialPruned(
            f"pruned by seqlm tune at evaluation {trial.reported - 1}: no model or metrics written"
        )
    clean = load_section(CleanParams, "clean", files.params)
    fmt = TextFormat.of(clean, tok, files.tokens_dir)
    add_text_reading(files.checkpoint, vocab, text_reading(fmt))
    write_portable(files.checkpoint)
    write_json(files.metrics, result.to_metrics())
    if resume is not None:
        resume.remove()  # completed: a rerun (dvc repro -f) starts from the beginning
    log_result(result)


def evaluation_hooks(
    *hooks: Callable[[Evaluation], bool | None] | None,
) -> Callable[[Evaluation], bool] | None:
    """One evaluation hook calling each of ``hooks`` (None ones left out) in order; it asks training
    to stop when any of them does. None when there are none."""
    present = [hook for hook in hooks if hook is not None]
    if not present:
        return None
    return lambda record: any([bool(hook(record)) for hook in present])


def log_result(result: TrainResult) -> None:
    """The run's summary, one log line."""
    log.info(
        "best val perplexity %.4f (%.4f bits/char) at epoch %d of %d, step %d of %d (stopped: "
        "%s), %.1f min, %.0f tokens/s",
        result.best_val_perplexity,
        result.best_val_bits_per_char,
        result.best_epoch,
        result.epochs,
        result.best_step,
        result.steps,
        result.stopped,
        result.train_seconds / 60,
        result.tokens_per_second,
    )


def live_logger(
    live_dir: str, main_rank: bool, resumed: bool
) -> contextlib.AbstractContextManager[Any]:
    """DVCLive's logger on rank 0 (continuing its curves when ``resumed``), nothing (``None``) on
    the other ranks."""
    if not main_rank:
        return contextlib.nullcontext()
    from dvclive import Live  # slow to import: only when the stage runs

    # dvcyaml=None: DVCLive must not touch dvc.yaml (the plots are declared there by hand)
    return Live(dir=live_dir, dvcyaml=None, save_dvc_exp=False, report=None, resume=resumed)


def open_state(
    state_dir: str | None, live_dir: str, current: dict[str, Any], main_rank: bool
) -> Resume | None:
    """The resumable state kept in ``state_dir`` (None: no such folder given); rank 0 alone reads
    it. When it is resumed from, the DVCLive folder is put back as it was when the state was
    saved."""
    if state_dir is None:
        return None
    resume = open_resume(state_dir, current, main_rank)
    if resume.saved is not None:
        restore_folder(live_dir, resume.saved["extras"].get("dvclive_files", {}))
    return resume


def keep_curves_with_state(resume: Resume, live: Any, live_dir: str) -> None:
    """Save DVCLive's folder and step with every state; continue a resumed run's step."""
    if resume.saved is not None:
        # set, not read back: Live(resume=True) stays at step 0 when only step 0 was logged
        live.step = resume.saved["extras"].get("dvclive_step", 0)
    resume.extras = lambda: {"dvclive_step": live.step, "dvclive_files": folder_files(live_dir)}


def log_evaluation(live: Any, within_epochs: bool, record: Evaluation) -> None:
    """One evaluation's figures to DVCLive, whose step is the evaluation's index (from 0)."""
    live.log_metric("train/perplexity", record.train_perplexity)
    live.log_metric("val/perplexity", record.val_perplexity)
    live.log_metric("val/bits_per_char", record.val_bits_per_char)
    live.log_metric("lr", record.lr)
    live.log_metric("tokens_per_second", record.tokens_per_second)
    live.log_metric("minutes", record.elapsed / 60)  # the x of the curves against time
    if within_epochs:  # evaluations are not epochs: say where each one was
        live.log_metric("epoch", record.epoch)
        live.log_metric("steps", record.step)
    live.next_step()
