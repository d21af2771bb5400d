"""Helpers the end-to-end pipeline tests share (importable: tests/ is on sys.path under pytest)."""

STAGES = ("download", "clean", "tokenize", "vocab", "corpus", "ngram", "train", "evaluate")

# A network small enough to train in seconds: the point is the plumbing, not the figures.
TINY = {
    "ngram": {"max_order": 4},
    "net": {"embedding_size": 16, "hidden_size": 24, "window": 16},
    "train": {"epochs": 2, "batch_size": 4, "num_steps": 16, "warmup_steps": 2},
    "generate": {"length": 20},
}


def ran(output: str) -> list[str]:
    """The stages a dvc repro / exp run printed as running, in pipeline order."""
    return [s for s in STAGES if f"Running stage '{s}'" in output]
