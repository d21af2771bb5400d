"""Helpers the end-to-end pipeline tests share (importable: tests/ is on sys.path under pytest)."""

# A few dozen lines of the book: enough for every stage, small enough for seconds.
TINY_TEXT = (
    "The Time Machine, by H. G. Wells\n"
    "\n"
    "I\n"
    "The Time Traveller (for so it will be convenient to speak of him)\n"
    "was expounding a recondite matter to us. His grey eyes shone and\n"
    "twinkled, and his usually pale face was flushed and animated.\n"
    "The fire burned brightly, and the soft radiance of the incandescent\n"
    "lights in the lilies of silver caught the bubbles that flashed and\n"
    "passed in our glasses. Our chairs, being his patents, embraced and\n"
    "caressed us rather than submitted to be sat upon, and there was that\n"
    "luxurious after-dinner atmosphere when thought roams gracefully\n"
    "free of the trammels of precision. And he put it to us in this\n"
    "way--marking the points with a lean forefinger--as we sat and lazily\n"
    "admired his earnestness over this new paradox (as we thought it:)\n"
    "and his fecundity.\n"
    "\n"
    "You must follow me carefully. I shall have to controvert one or two\n"
    "ideas that are almost universally accepted. The geometry, for\n"
    "instance, they taught you at school is founded on a misconception.\n"
    "Is not that rather a large thing to expect us to begin upon? said\n"
)

STAGES = ("download", "clean", "tokenize", "vocab", "corpus", "ngram", "train", "evaluate")

# A network small enough to train in seconds: the point is the plumbing, not the figures.
TINY = {
    "ngram": {"max_order": 4, "dynamic": True, "dynamic_order": 6},  # dynamic: the default too
    "net": {"embedding_size": 16, "hidden_size": 24, "window": 16},
    "train": {"epochs": 2, "batch_size": 4, "num_steps": 16, "warmup_steps": 2},
    "generate": {"length": 20},
    "evaluate": {"dynamic": True},  # the default too; kept explicit: the tests rely on it
}


def ran(output: str) -> list[str]:
    """The stages a dvc repro / exp run printed as running, in pipeline order."""
    return [s for s in STAGES if f"Running stage '{s}'" in output]
