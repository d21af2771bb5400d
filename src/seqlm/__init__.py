"""seqlm: a reproducible, DVC-orchestrated pipeline for sequence language models."""

__version__ = "0.1.0"
