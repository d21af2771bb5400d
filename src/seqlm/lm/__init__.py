"""Use what the pipeline trained: load a model file, score text, generate (``seqlm.load``).

See :mod:`seqlm.lm.base` for the interface and :mod:`seqlm.lm.load` for what can be loaded.
"""

from seqlm.lm.base import Alternative, LanguageModel, LineScore, TokenLogprobs
from seqlm.lm.load import load

__all__ = ["Alternative", "LanguageModel", "LineScore", "TokenLogprobs", "load"]
