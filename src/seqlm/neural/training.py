"""Training a neural LM: truncated BPTT over the train stream, validated by the convention.

Recurrent LMs (``rnn``, ``gru``, ``lstm``) train on the train stream preceded by ``<bos>`` (as every
split is read at evaluation), cut into minibatches by the textbook's iterators
(:mod:`seqlm.neural.batching`)::

    sequential (default): rows continue across batches, the state is carried and detached
        batch i:   row b = stream[o + b·L + i·T : ... + T]     (L = row length, T = num_steps)
        state after batch i ──detach──> initial state of batch i+1  (truncated BPTT)
    random: shuffled non-overlapping windows, every batch from the zero state

Seq2seq trains on (previous window → window) pairs, shuffled, every epoch from a random offset.
Every model starts with its output bias at the train split's unigram log-frequencies.

After every epoch the model scores the val split under the convention
(:func:`seqlm.neural.evaluation.score`); the best epoch's weights are the checkpoint; training
stops after ``epochs``, after ``patience`` epochs without improvement, or when the wall-clock budget
is spent.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import torch

from seqlm.neural.batching import seq_data_iter_random, seq_data_iter_sequential
from seqlm.neural.checkpoint import save_checkpoint
from seqlm.data.corpus import SplitData
from seqlm.core.errors import DataError, ParamError
from seqlm.params import TrainParams
from seqlm.core.logs import progress_disabled
from seqlm.neural.models import (
    NetParams,
    RecurrentLM,
    Seq2SeqLM,
    build_model,
    count_parameters,
    detach_state,
)
from seqlm.neural.evaluation import score
from seqlm.data.vocab import Vocab

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class EpochRecord:
    """One epoch's figures (logged to DVCLive by the stage)."""

    epoch: int
    train_perplexity: float  # exp of the mean training loss over the epoch (dropout on)
    val_perplexity: float
    val_bits_per_char: float
    lr: float  # at the end of the epoch
    tokens_per_second: float  # training tokens / training seconds (validation excluded)
    train_seconds: float  # wall time of the epoch's training steps
    seconds: float  # wall time of the epoch, validation included
    improved: bool


@dataclass
class TrainResult:
    """What ``metrics/train.json`` reports."""

    model: str
    parameters: int
    best_epoch: int
    best_val_perplexity: float
    best_val_bits_per_char: float
    epochs: int
    stopped: str  # "epochs", "patience", "budget" or "callback"
    train_seconds: float
    tokens_per_second: float
    device: str
    history: list[EpochRecord] = field(default_factory=list)

    def to_metrics(self) -> dict[str, object]:
        """The JSON record (history excluded: DVCLive has the curves)."""
        out = asdict(self)
        out.pop("history")
        return out


def resolve_device(name: str) -> torch.device:
    """``auto`` → ``cuda`` when available, else ``cpu``; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamError("train.device = 'cuda' but torch sees no GPU here; use 'auto' or 'cpu'")
    return torch.device(name)  # any other name was refused by TrainParams


def seed_everything(seed: int, threads: int) -> None:
    """Seed torch's generators and make the kernels deterministic."""
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


# --- minibatches ----------------------------------------------------------------------------------


def lm_batches(
    stream: np.ndarray, params: TrainParams, rng: random.Random
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of ``(X, Y)`` minibatches, each ``(B, T)``, by the chosen iterator."""
    if params.sampling == "random":
        return seq_data_iter_random(stream, params.batch_size, params.num_steps, rng)
    return seq_data_iter_sequential(stream, params.batch_size, params.num_steps, rng)


def lm_batches_per_epoch(n_tokens: int, params: TrainParams) -> int:
    """How many minibatches an epoch has at most (the cosine schedule's unit)."""
    if params.sampling == "random":
        return max(((n_tokens - 1) // params.num_steps) // params.batch_size, 0)
    return max(((n_tokens - 1) // params.batch_size) // params.num_steps, 0)


def window_pairs(
    ids: np.ndarray, window: int, batch_size: int, rng: random.Random
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One epoch of seq2seq batches ``(src (B, W), tgt (B, W), has_src (B,))``, random offset."""
    offset = rng.randrange(window)
    num_windows = (len(ids) - offset) // window
    windows = np.asarray(ids[offset : offset + num_windows * window]).reshape(num_windows, window)
    order = list(range(num_windows))
    rng.shuffle(order)
    for start in range(0, num_windows - batch_size + 1, batch_size):
        k = np.asarray(order[start : start + batch_size])
        src = windows[np.maximum(k - 1, 0)]
        has_src = k > 0  # window 0 has no previous window: the zero state
        yield src, windows[k], has_src


def seq2seq_batches_per_epoch(n_tokens: int, window: int, batch_size: int) -> int:
    return max((n_tokens - window + 1) // window // batch_size, 0)


# --- optimisation ---------------------------------------------------------------------------------


def init_output_bias(model: RecurrentLM | Seq2SeqLM, ids: np.ndarray) -> None:
    """Start the output layer's bias at the train split's unigram log-frequencies (add-one).

    The untrained model then predicts the unigram distribution instead of a uniform one, so the
    first steps are not spent learning token frequencies.
    """
    counts = np.bincount(np.asarray(ids, dtype=np.int64), minlength=model.vocab_size) + 1.0
    with torch.no_grad():
        model.head.bias.copy_(torch.as_tensor(np.log(counts / counts.sum()), dtype=torch.float32))


def make_optimizer(model: torch.nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    """SGD, Adam or AdamW over the model's parameters."""
    if params.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=params.lr, momentum=params.momentum,
            weight_decay=params.weight_decay,
        )
    if params.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    # AdamW decays the matrices (weights, embeddings), not the biases
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": params.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=params.lr,
    )


def lr_factor(
    step: int, total_steps: int, params: TrainParams, time_fraction: float = 0.0
) -> float:
    """Multiplier of ``lr`` at optimizer step ``step`` (warm-up, then the schedule's shape).

    The cosine follows whichever is further along, the steps (``step / total_steps``) or the time
    budget (``time_fraction`` of ``budget_minutes`` spent), so a run on a slow or busy machine still
    anneals to ``min_lr`` before its budget ends (and is then no longer step-for-step reproducible).
    """
    if params.warmup_steps and step < params.warmup_steps:
        return (step + 1) / params.warmup_steps
    if params.schedule != "cosine":
        return 1.0
    span = max(total_steps - params.warmup_steps, 1)
    progress = min(max((step - params.warmup_steps) / span, time_fraction), 1.0)
    floor = params.min_lr / params.lr
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class Plateau:
    """Reduce-on-plateau: the learning rate's scale drops by ``plateau_factor`` after
    ``plateau_patience`` epochs without a better val perplexity."""

    def __init__(self, params: TrainParams) -> None:
        self.factor = params.plateau_factor
        self.patience = params.plateau_patience
        self.scale = 1.0
        self.best = math.inf
        self.bad_epochs = 0

    def update(self, val_perplexity: float) -> None:
        if val_perplexity < self.best:
            self.best, self.bad_epochs = val_perplexity, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.scale *= self.factor
            self.bad_epochs = 0


class WeightAverage:
    """An exponential moving average of the weights (evaluated and saved instead of the raw)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.steps = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))  # short memory at the start
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def swap(self, model: torch.nn.Module) -> None:
        """Exchange the model's weights with the average (call twice to restore)."""
        current = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        self.shadow = current


# --- the loop -------------------------------------------------------------------------------------


def train(
    model_name: str,
    net: NetParams,
    params: TrainParams,
    vocab: Vocab,
    train_split: SplitData,
    val_split: SplitData,
    *,
    checkpoint_path: str | os.PathLike[str],
    on_epoch: Callable[[EpochRecord], bool | None] | None = None,
    on_step: Callable[[int, torch.nn.Module], bool | None] | None = None,
) -> TrainResult:
    """Train ``model_name`` on the train split; the best val epoch is saved at ``checkpoint_path``.

    ``on_epoch`` is called with each epoch's record; returning True stops training there.
    ``on_step`` is called after every optimizer step with the step count and the model (a benchmark
    can validate more often than once an epoch); returning True stops training after that step.
    """
    seed_everything(params.seed, params.threads)
    device = resolve_device(params.device)
    bos_id = vocab.id_of("<bos>")
    model = build_model(model_name, net, len(vocab), bos_id)
    init_output_bias(model, train_split.ids)
    model.to(device)
    n_params = count_parameters(model)
    rng = random.Random(params.seed)
    optimizer = make_optimizer(model, params)

    is_seq2seq = isinstance(model, Seq2SeqLM)
    if is_seq2seq:
        stream = np.asarray(train_split.ids, dtype=np.int64)
        per_epoch = seq2seq_batches_per_epoch(stream.size, net.window, params.batch_size)
        unit = f"windows of {net.window}"
    else:
        stream = np.concatenate([[bos_id], np.asarray(train_split.ids, dtype=np.int64)])
        per_epoch = lm_batches_per_epoch(stream.size, params)
        unit = f"rows of {params.num_steps}"
    if per_epoch < 1:
        raise DataError(
            f"the train split ({train_split.ids.size} tokens) is too short for one batch of "
            f"{params.batch_size} {unit}; lower train.batch_size or the window"
        )
    total_steps = per_epoch * params.epochs
    plateau = Plateau(params) if params.schedule == "plateau" else None
    average = WeightAverage(model, params.average) if params.average else None

    log.info(
        "training %s (%s parameters) on %s: %d train tokens, %d batches of %d %s per epoch, "
        "up to %d epochs",
        model_name, f"{n_params:,}", device, train_split.ids.size, per_epoch, params.batch_size,
        unit, params.epochs,
    )
    budget_s = params.budget_minutes * 60
    start = time.perf_counter()
    train_seconds = 0.0
    train_tokens = 0
    best = (math.inf, math.inf, 0)  # (val perplexity, bits per char, epoch)
    history: list[EpochRecord] = []
    stopped = "epochs"
    step = 0
    for epoch in range(1, params.epochs + 1):
        model.train()
        epoch_start = time.perf_counter()
        loss_sum, token_count = 0.0, 0
        state = None
        batches = (
            window_pairs(stream, net.window, params.batch_size, rng)
            if is_seq2seq
            else lm_batches(stream, params, rng)
        )
        bar = _progress(per_epoch, epoch)
        out_of_time = stop_requested = False
        hook_seconds = 0.0  # time spent in on_step, not training
        for batch in batches:
            if is_seq2seq:
                src, tgt, has_src = (torch.as_tensor(a, device=device) for a in batch)
                _, loss = model(src, tgt, has_src, targets=tgt)
                n_tok = tgt.numel()
            else:
                x, y = (torch.as_tensor(a, dtype=torch.long, device=device) for a in batch)
                if params.sampling == "random":
                    state = None
                _, loss, state = model(x, targets=y, state=state)
                state = detach_state(state)
                n_tok = y.numel()
            spent = (time.perf_counter() - start) / budget_s if budget_s else 0.0
            lr = params.lr * lr_factor(step, total_steps, params, spent)
            lr *= plateau.scale if plateau else 1.0
            for group in optimizer.param_groups:
                group["lr"] = max(lr, params.min_lr) if plateau else lr
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if params.clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), params.clip)
            optimizer.step()
            step += 1
            if average is not None:
                average.update(model)
            loss_sum += loss.item() * n_tok
            token_count += n_tok
            elapsed = time.perf_counter() - epoch_start
            if bar is not None:
                bar.update(1)
                bar.set_postfix(tok_s=f"{token_count / max(elapsed, 1e-9):,.0f}",
                                ppl=f"{math.exp(loss_sum / token_count):.3f}", refresh=False)
            if on_step is not None:
                hook_start = time.perf_counter()
                stop_requested = bool(on_step(step, model))
                hook_seconds += time.perf_counter() - hook_start
                if stop_requested:
                    break
            if budget_s and time.perf_counter() - start >= budget_s and epoch < params.epochs:
                out_of_time = True  # stop here; this partial epoch is still validated
                break
        if bar is not None:
            bar.close()
        epoch_train_seconds = time.perf_counter() - epoch_start - hook_seconds
        train_seconds += epoch_train_seconds
        train_tokens += token_count

        if average is not None:
            average.swap(model)
        val, _ = score(model, val_split, bos_id)
        improved = val.perplexity < best[0]
        if improved:
            best = (val.perplexity, val.bits_per_char, epoch)
            save_checkpoint(
                checkpoint_path, model, model_name=model_name, net=net, vocab=vocab,
                epoch=epoch, best_val_perplexity=val.perplexity,
            )
        if average is not None:
            average.swap(model)
        if plateau is not None:
            plateau.update(val.perplexity)
        record = EpochRecord(
            epoch=epoch,
            train_perplexity=math.exp(loss_sum / max(token_count, 1)),
            val_perplexity=val.perplexity,
            val_bits_per_char=val.bits_per_char,
            lr=optimizer.param_groups[0]["lr"],
            tokens_per_second=token_count / max(epoch_train_seconds, 1e-9),
            train_seconds=epoch_train_seconds,
            seconds=time.perf_counter() - epoch_start,
            improved=improved,
        )
        history.append(record)
        log.info(
            "epoch %d: train ppl %.3f, val ppl %.4f (%.4f bits/char)%s, lr %.2e, %.0f tokens/s, "
            "%.1fs",
            epoch, record.train_perplexity, val.perplexity, val.bits_per_char,
            " *" if improved else "", record.lr, record.tokens_per_second, record.seconds,
        )
        if (on_epoch is not None and on_epoch(record)) or stop_requested:
            stopped = "callback"
            break
        if out_of_time:
            stopped = "budget"
            break
        if params.patience and epoch - best[2] >= params.patience:
            stopped = "patience"
            break
    return TrainResult(
        model=model_name,
        parameters=n_params,
        best_epoch=best[2],
        best_val_perplexity=best[0],
        best_val_bits_per_char=best[1],
        epochs=len(history),
        stopped=stopped,
        train_seconds=time.perf_counter() - start,
        tokens_per_second=train_tokens / max(train_seconds, 1e-9),
        device=str(device),
        history=history,
    )


def _progress(total: int, epoch: int):  # noqa: ANN202 (a tqdm bar or None)
    if progress_disabled():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"epoch {epoch}", unit="batch", leave=False, mininterval=1.0)
