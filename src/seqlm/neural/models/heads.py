"""The output layer (``net.output``): a full softmax or an adaptive softmax, behind one interface.

``softmax`` is a linear map from the last hidden layer to every token's logit, ``(…, H) → (…, V)``.
``adaptive`` is torch's ``AdaptiveLogSoftmaxWithLoss`` (Grave et al. 2017): a head scores the
frequent ids (below ``cutoffs[0]``) and one class per cluster of rarer ids, and each cluster has
its own, narrower, softmax::

    log p(v) = log softmax(head(h))[v]                                    v < c0
    log p(v) = log softmax(head(h))[c0 + i] + log softmax(tail_i(h))[v − c_i]    c_i ≤ v < c_{i+1}

It is an exact, normalised distribution over all ``V`` ids; training reads only the target's
cluster, so a step costs far less than a full ``V``-way softmax. The helpers below give, for
either kind: every token's score (:func:`head_scores`: logits, or the adaptive softmax's
normalised log-probabilities, whose log-softmax is themselves), the mean cross-entropy
(:func:`head_loss`; :func:`head_output` gives both as a model's ``forward`` returns them) and the
float64 log-probability of each target (:func:`head_target_logprobs`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from seqlm.core.errors import ParamError
from seqlm.params import NetParams

Head = nn.Linear | nn.AdaptiveLogSoftmaxWithLoss

SCORED_PER_CALL = 1 << 20
"""Logits per float64 log-softmax when scoring (8 MiB): a ``(4096, 10001)`` chunk of a word-level
model's logits is normalised about a hundred rows at a time; a character vocabulary's in one call."""


def make_head(net: NetParams, vocab_size: int) -> Head:
    """The output layer ``net.output`` asks for, over ``vocab_size`` ids.

    Raises ParamError when the adaptive softmax's cutoffs do not fit the vocabulary.
    """
    if net.output == "softmax":
        return nn.Linear(net.hidden_size, vocab_size, bias=net.bias)
    if net.cutoffs[-1] >= vocab_size:
        raise ParamError(
            f"net.cutoffs = {list(net.cutoffs)} must all be below the vocabulary size "
            f"{vocab_size} (each cluster needs at least one id); lower the cutoffs, or use "
            f"net.output: softmax for a small vocabulary"
        )
    return nn.AdaptiveLogSoftmaxWithLoss(
        net.hidden_size,
        vocab_size,
        list(net.cutoffs),
        div_value=net.div_value,
        head_bias=net.bias,
    )


def output_bias(head: Head) -> torch.Tensor | None:
    """The output layer's bias (the adaptive softmax's head bias), or None without one."""
    return head.bias if isinstance(head, nn.Linear) else head.head.bias


def init_head(head: Head) -> None:
    """Zero the output bias (the adaptive softmax's head bias); the weights keep their init."""
    bias = output_bias(head)
    assert bias is not None, "the recurrent models' output layers always have a bias"
    nn.init.zeros_(bias)


def head_scores(head: Head, hidden: torch.Tensor) -> torch.Tensor:
    """``(…, H) → (…, V)``: logits (softmax) or normalised log-probabilities (adaptive)."""
    if isinstance(head, nn.Linear):
        return head(hidden)
    flat = head.log_prob(hidden.reshape(-1, hidden.shape[-1]))  # (N, V)
    return flat.view(*hidden.shape[:-1], head.n_classes)


def head_loss(head: Head, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``targets (…)`` given ``hidden (…, H)`` (adaptive softmax only; the
    softmax models take it from the logits they also return).

    It runs in float32 even under mixed precision (``torch.autocast`` off here): the adaptive
    softmax copies its clusters' log-probabilities into one tensor, whose dtypes autocast would
    mix, and its loss is a sum of log-probabilities best kept in float32."""
    assert isinstance(head, nn.AdaptiveLogSoftmaxWithLoss)
    with torch.autocast(hidden.device.type, enabled=False):
        flat = hidden.float().reshape(-1, hidden.shape[-1])  # (N, H)
        return head(flat, targets.reshape(-1)).loss


def head_output(
    head: Head, hidden: torch.Tensor, targets: torch.Tensor | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``hidden (B, T, H)`` → ``(scores (B, T, V), mean cross-entropy of targets (B, T), or None
    without targets)``, what every model's ``forward`` returns. The scores are
    :func:`head_scores`; with the adaptive softmax and ``targets`` they are not computed (None):
    its loss reads only each target's cluster."""
    if targets is not None and isinstance(head, nn.AdaptiveLogSoftmaxWithLoss):
        return None, head_loss(head, hidden, targets)
    logits = head_scores(head, hidden)  # (B, T, V)
    if targets is None:
        return logits, None
    return logits, F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def gather_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[target]`` in float64: ``(B, T, V), (B, T) -> (B, T)``."""
    logp = F.log_softmax(logits.double(), dim=-1)  # (B, T, V)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)


def linear_target_logprobs(
    head: nn.Linear, hidden: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """``gather_logprobs(head(hidden), targets)``, ``(…, H), (…) -> (…)`` float64, in less memory.

    The float64 log-softmax (the largest tensors) is taken :data:`SCORED_PER_CALL` logits at a
    time, a slice of rows after another; each row's is its own, so the numbers are those of one
    call (which it is, up to that size).
    """
    logits = head(hidden)  # (…, V) float32
    rows = max(SCORED_PER_CALL // head.out_features, 1)
    if targets.numel() <= rows:
        return gather_logprobs(logits, targets)
    flat, flat_y = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    out = torch.empty(flat_y.shape, dtype=torch.float64, device=logits.device)  # (N,)
    for i in range(0, flat_y.numel(), rows):  # written in place: no heap of small pieces
        logp = F.log_softmax(flat[i : i + rows].double(), dim=-1)  # (rows, V)
        torch.gather(logp, 1, flat_y[i : i + rows, None], out=out[i : i + rows, None])
    return out.view(targets.shape)


def adaptive_target_logprobs(
    head: nn.AdaptiveLogSoftmaxWithLoss, hidden: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """``log p(target)`` under the adaptive softmax, ``(…, H), (…) -> (…)`` float64.

    The head's and each cluster's log-softmax are taken in float64 (as :func:`gather_logprobs`
    does for the full softmax), each cluster's only over the rows whose target is in it.
    """
    x, y = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)  # (N, H), (N,)
    head_logp = F.log_softmax(head.head(x).double(), dim=-1)  # (N, shortlist + clusters)
    in_head = y.clamp(max=head.shortlist_size - 1)
    out = head_logp.gather(1, in_head.unsqueeze(1)).squeeze(1)  # right where y < shortlist
    for i, (low, high) in enumerate(zip(head.cutoffs[:-1], head.cutoffs[1:], strict=True)):
        rows = ((y >= low) & (y < high)).nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        tail_logp = F.log_softmax(head.tail[i](x[rows]).double(), dim=-1)  # (n_i, c_{i+1} − c_i)
        within = tail_logp.gather(1, (y[rows] - low).unsqueeze(1)).squeeze(1)
        out[rows] = head_logp[rows, head.shortlist_size + i] + within
    return out.view(targets.shape)


def head_target_logprobs(head: Head, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log p(target)`` of every target, float64, either kind of output layer."""
    if isinstance(head, nn.Linear):
        return linear_target_logprobs(head, hidden, targets)
    return adaptive_target_logprobs(head, hidden, targets)


def unigram_output_bias(head: Head, log_freq: np.ndarray) -> None:
    """Set the output bias so that the untrained layer (zero weights aside) predicts ``log_freq``.

    Softmax: the bias is the unigram log-frequencies. Adaptive: the head's bias is the
    log-frequency of each frequent id and the log of each cluster's total frequency (ids within a
    cluster then start equally likely: the clusters' softmaxes have no bias).
    """
    with torch.no_grad():
        if isinstance(head, nn.Linear):
            head.bias.copy_(torch.as_tensor(log_freq, dtype=torch.float32))
            return
        p = np.exp(np.asarray(log_freq, dtype=np.float64))
        edges = head.cutoffs  # [c0, c1, …, V]
        clusters = [
            np.log(p[low:high].sum()) for low, high in zip(edges[:-1], edges[1:], strict=True)
        ]
        bias = np.concatenate([log_freq[: head.shortlist_size], clusters])
        head.head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
