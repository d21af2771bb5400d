"""Helpers the end-to-end pipeline tests share (importable: tests/ is on sys.path under pytest)."""

STAGES = ("download", "clean", "tokenize", "vocab", "corpus", "ngram", "train", "evaluate")


def ran(output: str) -> list[str]:
    """The stages a dvc repro / exp run printed as running, in pipeline order."""
    return [s for s in STAGES if f"Running stage '{s}'" in output]
