"""The ``generate`` section of ``params.yaml``: how every model samples text, to read side by side.

Shared by the n-gram baseline and the neural models, so their samples start from the same prefixes
with the same length, temperature, top-k and seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from seqlm.errors import ParamError


@dataclass(frozen=True)
class GenerateParams:
    """Sampling settings.

    * ``prefixes``: texts to continue (cleaned text: lower-case letters and spaces); ``""`` starts
      from the beginning-of-stream context alone;
    * ``length``: tokens to sample after each prefix;
    * ``temperature``: divides the log-probabilities before sampling (1 = the model as it is);
    * ``top_k``: sample among the ``k`` most likely tokens only; 0 turns it off;
    * ``seed``: seeds the numpy Generator, so samples are reproducible.
    """

    prefixes: tuple[str, ...] = ("time traveller", "the time machine")
    length: int = 200
    temperature: float = 1.0
    top_k: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.prefixes, str) or not isinstance(self.prefixes, (tuple, list)):
            raise ParamError(f"generate.prefixes = {self.prefixes!r} must be a list of strings")
        if not self.prefixes:
            raise ParamError('generate.prefixes is empty; list at least one prefix ("" is allowed)')
        for prefix in self.prefixes:
            if not isinstance(prefix, str):
                raise ParamError(f"generate.prefixes has {prefix!r}; every prefix must be a string")
        object.__setattr__(self, "prefixes", tuple(self.prefixes))
        if _not_int(self.length) or self.length < 1:
            raise ParamError(f"generate.length = {self.length!r} must be an integer >= 1")
        t = self.temperature
        if (
            isinstance(t, bool)
            or not isinstance(t, (int, float))
            or not (math.isfinite(t) and t > 0)
        ):
            raise ParamError(f"generate.temperature = {t!r} must be a number > 0")
        if _not_int(self.top_k) or self.top_k < 0:
            raise ParamError(f"generate.top_k = {self.top_k!r} must be an integer >= 0 (0 = off)")
        if _not_int(self.seed) or self.seed < 0:
            raise ParamError(f"generate.seed = {self.seed!r} must be an integer >= 0")


def _not_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)
