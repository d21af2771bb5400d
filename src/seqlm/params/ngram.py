"""The ``ngram`` section's schema: the n-gram baseline's order, smoothing, pruning, memory cap and
dynamic evaluation."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Self

from pydantic import model_validator

from seqlm.core.errors import ParamError
from seqlm.core.schema import Allowed, Count, Listed, NonNegativeInt, Positive, Section, choices
from seqlm.params.model import AUTO

Smoothing = Literal["kneser_ney", "laplace"]
SMOOTHINGS = choices(Smoothing)


class NgramParams(Section):
    """How the n-gram baseline is fitted.

    ``order`` is an integer ``>= 1`` or ``"auto"``: the order in ``1 .. max_order`` with the lowest
    val perplexity. ``laplace_alpha`` is only read when ``smoothing`` is ``laplace``. ``prune``:
    count thresholds per order as KenLM's ``lmplz --prune`` takes them (an n-gram of order ``k``
    seen at most ``prune[k − 1]`` times is dropped; the last value holds for the higher orders;
    non-decreasing; unigrams are never pruned, so the first value is 0); empty: no pruning
    (:mod:`seqlm.ngram.pruning`). ``memory_mb``: the stage's memory cap in MB, shared among its
    passes and processes (:mod:`seqlm.ngram.memory`), a model larger than its third counted in
    shards (:mod:`seqlm.ngram.baseline_sharded`); the figures do not depend on it.
    ``dynamic``: also score val and test with a model of ``dynamic_order`` that takes in each
    split's text as it scores it, fitted again every ``dynamic_segment`` targets (at most
    ``dynamic_refits`` times a split: longer segments on a longer split), for the evaluate stage's
    ensemble (:mod:`seqlm.ngram.dynamic`); not with ``prune``.
    """

    section: ClassVar[str] = "ngram"
    order: Annotated[
        Count | Literal["auto"], Allowed(f"is not allowed; use an integer >= 1 or {AUTO!r}")
    ] = AUTO
    max_order: Count = 10
    smoothing: Annotated[
        Smoothing, Allowed(f"is not a smoothing; choose one of: {', '.join(SMOOTHINGS)}")
    ] = "kneser_ney"
    laplace_alpha: Positive = 1.0
    prune: Listed[NonNegativeInt] = ()
    memory_mb: Count = 2048
    dynamic: bool = False
    dynamic_order: Count = 12
    dynamic_segment: Count = 128
    dynamic_refits: Count = 64

    @model_validator(mode="after")
    def _prune_thresholds(self) -> Self:
        prune = list(self.prune)
        if not prune:
            return self
        if self.dynamic and any(prune):
            raise ParamError(
                f"ngram.dynamic with ngram.prune = {prune}: a pruned model's tables lack the "
                f"counts it would add the text to; set ngram.dynamic=false or ngram.prune=[]"
            )
        if prune[0] != 0:
            raise ParamError(
                f"ngram.prune = {prune}: unigrams are never pruned, so the first threshold must "
                f"be 0 (e.g. [0, 1] drops the n-grams of order 2 and up seen once)"
            )
        if prune != sorted(prune):
            raise ParamError(
                f"ngram.prune = {prune} must be non-decreasing (a higher order's threshold below "
                f"a lower one's would keep n-grams whose parts were dropped)"
            )
        if len(prune) > max(self.orders_to_try()):
            raise ParamError(
                f"ngram.prune = {prune} gives {len(prune)} thresholds for at most "
                f"{max(self.orders_to_try())} orders; give at most one per order"
            )
        if self.smoothing != "kneser_ney" and any(prune):
            raise ParamError(
                f"ngram.prune = {prune} needs ngram.smoothing = kneser_ney, not "
                f"{self.smoothing!r} (pruning moves the dropped mass to the back-off)"
            )
        return self

    def orders_to_try(self) -> list[int]:
        """The orders the stage fits: ``1 .. max_order`` for ``auto``, else just ``order``."""
        return list(range(1, self.max_order + 1)) if self.order == AUTO else [int(self.order)]

    def counted_order(self) -> int:
        """The highest order the stage counts: the highest it tries, or ``dynamic_order``."""
        return max(*self.orders_to_try(), self.dynamic_order if self.dynamic else 1)
