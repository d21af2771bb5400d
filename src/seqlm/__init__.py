"""seqlm: a reproducible, DVC-orchestrated pipeline for sequence language models.

``seqlm.load(path)`` turns what the pipeline trained into a model that scores text and generates
(:func:`seqlm.lm.load`). It is imported on first use (PEP 562), so ``import seqlm`` stays light and
the pipeline's stages, which never load a model this way, do not depend on :mod:`seqlm.lm`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "load":
        return importlib.import_module("seqlm.lm").load
    raise AttributeError(f"module 'seqlm' has no attribute {name!r}")
