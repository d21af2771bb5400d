"""Linear mixtures of any number of language models, their weights fitted by EM.

A mixture of members ``m = 1 .. M`` gives each target ``p(x_t) = Σ_m w_m · p_m(x_t)`` with weights
``w_m >= 0`` summing to 1. Every member scores the same targets (same split, same vocabulary), so
the members form a matrix of natural-log probabilities ``lp (M, N)``, one row per member, one
column per target.

The weights that maximise the likelihood of these targets are found by EM (choose them on val
only, then apply them to test)::

    start: w_m = 1 / M
    E:     r_mt = w_m p_mt / Σ_k w_k p_kt          (each member's share of target t)
    M:     w_m  = mean_t r_mt

Each iteration never lowers the log-likelihood (EM's monotone property) and the likelihood is
concave in ``w``, so EM climbs to the optimum; it stops when an iteration gains less than ``tol``
nats per target. As a guard against stopping short, the fitted mixture is compared with every
single member (a one-hot weight vector), and the best of those is kept: the mixture's
log-likelihood of the fitting targets is never below any member's (beyond a relative 1e-12 of
rounding, so that a tie between a member and the same member mixed with its twin is no reason to
drop the mixture).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from seqlm.core.errors import DataError

MAX_ITER = 10_000
TOL = 1e-10  # stop when an iteration gains less than this many nats per target
PRUNE = 1e-6  # weights below this are also tried at 0
ROUNDING = 1e-12  # the guard's slack, relative to the log-likelihood


def member_matrix(members: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """The members' names and their log-probabilities as one ``(M, N)`` float64 matrix.

    Refused (DataError) unless every member gives one log-probability ``<= 0`` (or ``-inf``, a
    zero probability) per target for the same number of targets, and every target has a member
    that gives it a positive probability."""
    if not members:
        raise DataError("a mixture needs at least one member")
    names = list(members)
    rows = [np.asarray(members[n], dtype=np.float64) for n in names]
    sizes = {n: r.shape for n, r in zip(names, rows, strict=True)}
    if len(set(sizes.values())) != 1 or rows[0].ndim != 1 or rows[0].size == 0:
        raise DataError(
            f"every mixture member must score the same non-empty run of targets, got shapes "
            f"{sizes}; score them on the same split with the same vocabulary"
        )
    lp = np.stack(rows)  # (M, N)
    if np.isnan(lp).any() or (lp > 1e-9).any() or (lp == np.inf).any():
        bad = names[int(np.flatnonzero((np.isnan(lp) | (lp > 1e-9)).any(axis=1))[0])]
        raise DataError(f"member {bad!r} has a log-probability that is NaN or above 0")
    impossible = np.flatnonzero(np.isneginf(lp).all(axis=0))
    if impossible.size:
        raise DataError(
            f"target {int(impossible[0])} has probability 0 under every member; "
            "no mixture can score it"
        )
    return names, lp


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """``log Σ_m exp(a_mt)`` of ``a (M, N)`` down its rows: ``(N,)`` (columns of ``-inf`` stay so)."""
    top = a.max(axis=0)  # (N,)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.exp(a - safe).sum(axis=0))


def mixture_logprobs(lp: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``log Σ_m w_m p_mt`` for every target of ``lp (M, N)``, computed stably: ``(N,)``."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (lp.shape[0],) or (w < 0).any() or not math.isclose(w.sum(), 1.0, abs_tol=1e-9):
        raise ValueError(f"need {lp.shape[0]} weights >= 0 summing to 1, got {w}")
    with np.errstate(divide="ignore"):
        logw = np.log(w)[:, None]  # (M, 1); a zero weight is -inf
    return _logsumexp_rows(logw + lp)


def em_weights(lp: np.ndarray, *, max_iter: int = MAX_ITER, tol: float = TOL) -> np.ndarray:
    """The mixture weights ``(M,)`` that maximise the log-likelihood of the targets ``lp (M, N)``.

    EM from uniform weights. Where the optimum gives a member no weight EM only approaches 0, so
    the weights below :data:`PRUNE` are also tried at 0 (the rest renormalised) and the better of
    the two kept. Then the guard: if a single member alone scores the targets better (beyond
    rounding, :data:`ROUNDING` of the log-likelihood), that member alone (weight 1) is returned."""
    m, n = lp.shape
    w = np.full(m, 1.0 / m)
    loglik = mixture_logprobs(lp, w).sum()
    for _ in range(max_iter):
        with np.errstate(divide="ignore"):
            joint = np.log(w)[:, None] + lp  # (M, N) log w_m p_mt
        resp = np.exp(joint - _logsumexp_rows(joint))  # (M, N) responsibilities
        w = resp.mean(axis=1)
        w /= w.sum()
        new = mixture_logprobs(lp, w).sum()
        if new - loglik < tol * n:  # EM never lowers it: the gain is >= 0 up to rounding
            break
        loglik = new
    pruned = np.where(w < PRUNE, 0.0, w)
    pruned /= pruned.sum()
    fitted = max((w, pruned), key=lambda v: mixture_logprobs(lp, v).sum())
    best_fit = mixture_logprobs(lp, fitted).sum()
    singles = lp.sum(axis=1)  # (M,) each member alone (-inf where it gives a target 0)
    best = int(np.argmax(singles))
    if singles[best] > best_fit + ROUNDING * abs(best_fit):
        return np.eye(m)[best]
    return fitted


def fit_mixture(members: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Each member's weight, fitted by EM on these targets (pass the val split's)."""
    names, lp = member_matrix(members)
    return {name: float(w) for name, w in zip(names, em_weights(lp), strict=True)}


def apply_mixture(members: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """The mixture's log-probability of every target, ``members`` weighted by ``weights``."""
    if set(members) != set(weights):
        raise DataError(
            f"the mixture was fitted on members {sorted(weights)}, given {sorted(members)}"
        )
    names, lp = member_matrix(members)
    return mixture_logprobs(lp, np.array([weights[n] for n in names]))
