"""The ``ngram`` section of ``params.yaml``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from seqlm.errors import ParamError

SMOOTHINGS = ("kneser_ney", "laplace")
AUTO = "auto"


@dataclass(frozen=True)
class NgramParams:
    """How the n-gram baseline is fitted.

    ``order`` is an integer ``>= 1`` or ``"auto"``: the order in ``1 .. max_order`` with the lowest
    val perplexity. ``laplace_alpha`` is only read when ``smoothing`` is ``laplace``.
    """

    order: int | str = AUTO
    max_order: int = 10
    smoothing: str = "kneser_ney"
    laplace_alpha: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.order, bool) or not (
            self.order == AUTO or (isinstance(self.order, int) and self.order >= 1)
        ):
            raise ParamError(
                f"ngram.order = {self.order!r} is not allowed; use an integer >= 1 or {AUTO!r}"
            )
        if (
            isinstance(self.max_order, bool)
            or not isinstance(self.max_order, int)
            or self.max_order < 1
        ):
            raise ParamError(f"ngram.max_order = {self.max_order!r} must be an integer >= 1")
        if self.smoothing not in SMOOTHINGS:
            raise ParamError(
                f"ngram.smoothing = {self.smoothing!r} is not a smoothing; "
                f"choose one of: {', '.join(SMOOTHINGS)}"
            )
        alpha = self.laplace_alpha
        if (
            isinstance(alpha, bool)
            or not isinstance(alpha, (int, float))
            or not (math.isfinite(alpha) and alpha > 0)
        ):
            raise ParamError(f"ngram.laplace_alpha = {alpha!r} must be a number > 0")

    def orders_to_try(self) -> list[int]:
        """The orders the stage fits: ``1 .. max_order`` for ``auto``, else just ``order``."""
        return list(range(1, self.max_order + 1)) if self.order == AUTO else [int(self.order)]
