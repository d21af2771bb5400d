"""The perplexity convention: how every model in seqlm is scored.

One convention, used by every evaluator (n-gram, RNN/GRU/LSTM, seq2seq, their interpolation):

* Each split (val, test; train for reporting) is scored on its own, from a fresh start: the model
  sees a start-of-stream context (``<bos>`` / ``<s>``) and then every token of the split's stream is a
  target exactly once, predicted from the tokens before it *in that split*.
* Out-of-vocabulary tokens are ``<unk>`` and are scored like any other token; the number of them is
  reported beside the perplexity (``oov``).
* Models give natural-log probabilities of each target, ``log p(x_t | <bos>, x_1 .. x_{t-1})``.
  From those:

  - ``tokens``: the number of targets;
  - ``nll``: the total negative log-likelihood in nats, ``-Σ log p``;
  - ``perplexity``: ``exp(nll / tokens)``;
  - ``bits_per_char``: ``nll / ln 2 / characters``, where ``characters`` is the length of the split's
    running text (:mod:`seqlm.data.tokens`): with ``tokenize.line_end: space`` its non-empty lines
    joined by one space; with ``eos`` and ``newline`` every line followed by one ``\\n`` (an
    ``<eos>`` counts as the one character of the line end it stands for). A word line's text is its
    words joined by one space, a subword line's the line itself. It is the same text whatever the
    tokenization, so bits per character compares word-, character- and subword-level models with
    the same line ends, where perplexities per token do not;
  - ``bits_per_byte``: ``nll / ln 2 / bytes``, ``bytes`` the UTF-8 length of the same running text:
    the scale the field compares tokenizations on (lm-evaluation-harness, enwik8); equal to bits
    per character on ASCII text;
  - ``word_perplexity``: ``exp(nll / words)``, ``words`` the length of the word-level stream of the
    running text (its whitespace-separated words, and a line end each with ``eos``/``newline``), as
    papers convert subword models' scores to a word-level perplexity; for a word-level model it is
    its perplexity.

Every model is scored through :func:`score_model` (or :func:`score_logprobs` for log-probabilities
already in hand, such as a mixture's): a function giving the targets' log-probabilities, and the split.

Every metrics file that reports splits uses the record shape of :meth:`SplitScore.to_record`:
``{"val": {"tokens", "nll", "perplexity", "bits_per_char", "oov", "characters", "bits_per_byte",
"bytes", "word_perplexity", "words"}, "test": {...}}`` (the last four null where a split's bytes
and words were not counted).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from seqlm.core.errors import DataError


@dataclass(frozen=True)
class SplitScore:
    """A split's score under the convention."""

    tokens: int
    nll: float
    perplexity: float
    bits_per_char: float
    oov: int
    characters: int
    bits_per_byte: float | None = None
    bytes: int | None = None
    word_perplexity: float | None = None
    words: int | None = None

    def to_record(self) -> dict[str, float | int]:
        """The JSON record every metrics file uses for a split."""
        return asdict(self)


def score_split(
    target_logprobs: np.ndarray,
    characters: int,
    oov: int,
    bytes: int | None = None,  # noqa: A002 (the record's name)
    words: int | None = None,
) -> SplitScore:
    """Score a split from the natural-log probability of each of its targets; ``bytes`` and
    ``words`` (when counted) give bits per byte and word-level perplexity."""
    return score_split_parts([target_logprobs], characters, oov, bytes, words)


def score_split_parts(
    parts: Iterable[np.ndarray],
    characters: int,
    oov: int,
    bytes: int | None = None,  # noqa: A002 (the record's name)
    words: int | None = None,
) -> SplitScore:
    """:func:`score_split` of the log-probabilities that ``parts`` give in order (a long split
    scored chunk by chunk), holding one part at a time; the nll is the sum of the parts' sums."""
    check_counts(characters, bytes, words)
    tokens, nll = 0, 0.0
    for part in parts:
        nll += part_nll(part, tokens)
        tokens += np.size(part)
    return score_of_nll(nll, tokens, characters, oov, bytes, words)


def check_counts(characters: int, bytes: int | None, words: int | None) -> None:  # noqa: A002
    """A split's character, byte and word counts must be positive (when counted)."""
    for name, n in (("character", characters), ("byte", bytes), ("word", words)):
        if n is not None and n <= 0:
            raise DataError(f"a split needs a positive {name} count, got {n}")


def part_nll(part: np.ndarray, offset: int = 0) -> float:
    """The negative log-likelihood of one part of a split's log-probabilities (checked: 1-d, each
    finite and ``<= 0``; ``offset``: the part's first target in the split, for the message)."""
    lp = np.asarray(part, dtype=np.float64)
    if lp.ndim != 1:
        raise DataError(f"need one log-probability per target token, got shape {lp.shape}")
    if not np.all(np.isfinite(lp)) or np.any(lp > 1e-9):
        bad = int(np.flatnonzero(~np.isfinite(lp) | (lp > 1e-9))[0])
        raise DataError(
            f"target {offset + bad} has log-probability {lp[bad]}, not a finite value <= 0"
        )
    return float(-lp.sum())


def score_of_nll(
    nll: float,
    tokens: int,
    characters: int,
    oov: int,
    bytes: int | None = None,  # noqa: A002 (the record's name)
    words: int | None = None,
) -> SplitScore:
    """The record of a split whose ``tokens`` targets have negative log-likelihood ``nll``."""
    if tokens == 0:
        raise DataError("need one log-probability per target token, got shape (0,)")
    check_counts(characters, bytes, words)
    return SplitScore(
        tokens=int(tokens),
        nll=nll,
        perplexity=math.exp(nll / tokens),
        bits_per_char=nll / math.log(2) / characters,
        oov=int(oov),
        characters=int(characters),
        bits_per_byte=None if bytes is None else nll / math.log(2) / bytes,
        bytes=None if bytes is None else int(bytes),
        word_perplexity=None if words is None else math.exp(nll / words),
        words=None if words is None else int(words),
    )


class ScoredSplit(Protocol):
    """What scoring needs of a split (:class:`seqlm.data.corpus.SplitData` is one)."""

    @property
    def ids(self) -> np.ndarray: ...  # (N,) the targets

    @property
    def characters(self) -> int: ...

    @property
    def oov(self) -> int: ...

    @property
    def bytes(self) -> int | None: ...

    @property
    def words(self) -> int | None: ...


def score_logprobs(split: ScoredSplit, target_logprobs: np.ndarray) -> SplitScore:
    """Score ``split`` from the log-probability of each of its targets (one per target, in order)."""
    lp = np.asarray(target_logprobs)
    if lp.shape != np.shape(split.ids):
        raise DataError(
            f"{lp.size} log-probabilities (shape {lp.shape}) for {np.size(split.ids)} targets; "
            "need exactly one per target"
        )
    return score_split(lp, split.characters, split.oov, split.bytes, split.words)


def score_model(
    target_logprobs: Callable[[np.ndarray], np.ndarray], split: ScoredSplit
) -> tuple[SplitScore, np.ndarray]:
    """Score a model on a split: ``target_logprobs(ids)`` gives each target's natural-log probability
    from a fresh start; returns the score and those log-probabilities (float64)."""
    lp = np.asarray(target_logprobs(split.ids), dtype=np.float64)
    return score_logprobs(split, lp), lp


def score_model_parts(
    target_logprob_parts: Callable[[np.ndarray], Iterable[np.ndarray]], split: ScoredSplit
) -> SplitScore:
    """:func:`score_model` without keeping the log-probabilities: ``target_logprob_parts(ids)``
    gives them chunk by chunk, in order, so a long split costs one chunk of memory."""
    parts = target_logprob_parts(split.ids)
    return score_split_parts(parts, split.characters, split.oov, split.bytes, split.words)


def oov_count(ids: np.ndarray, unk_id: int = 0) -> int:
    """How many targets are ``<unk>``."""
    return int(np.count_nonzero(np.asarray(ids) == unk_id))


def logprobs_path(directory: str | os.PathLike[str], split: str) -> Path:
    """Where a model's per-target log-probabilities of ``split`` are saved inside its output folder."""
    return Path(directory) / f"{split}_logprobs.npy"


def save_target_logprobs(directory: str | os.PathLike[str], split: str, lp: np.ndarray) -> Path:
    """Save per-target natural-log probabilities (float64, one per target) for later mixing."""
    from seqlm.core.atomic import save_npy

    path = logprobs_path(directory, split)
    save_npy(path, np.asarray(lp, dtype=np.float64))
    return path


class LogprobsWriter:
    """:func:`save_target_logprobs` for ``size`` log-probabilities that come in parts, one part
    held at a time: the same file, byte for byte, written atomically (use it as a context manager;
    the file appears when exactly ``size`` were written)."""

    def __init__(self, directory: str | os.PathLike[str], split: str, size: int) -> None:
        self.path, self.size, self.written = logprobs_path(directory, split), size, 0

    def __enter__(self) -> LogprobsWriter:
        from seqlm.core.atomic import atomic_path

        self._stack = ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._file = self._stack.enter_context(open(tmp, "wb"))
        header = np.lib.format.header_data_from_array_1_0(np.zeros(0, dtype=np.float64))
        np.lib.format.write_array_header_1_0(self._file, {**header, "shape": (self.size,)})
        return self

    def write(self, part: np.ndarray) -> None:
        values = np.ascontiguousarray(part, dtype=np.float64)
        self._file.write(values.tobytes())
        self.written += values.size

    def passing(self, parts: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """``parts`` as they come, each written on its way (to score and save them in one pass)."""
        for part in parts:
            self.write(part)
            yield part

    def __exit__(self, kind: Any, error: BaseException | None, trace: Any) -> bool | None:
        if error is None and self.written != self.size:
            short = DataError(f"wrote {self.written} log-probabilities of {self.size}")
            self._stack.__exit__(DataError, short, None)
            raise short
        return self._stack.__exit__(kind, error, trace)


def load_target_logprobs(directory: str | os.PathLike[str], split: str) -> np.ndarray:
    """Load what :func:`save_target_logprobs` saved."""
    path = logprobs_path(directory, split)
    if not path.is_file():
        raise DataError(f"no saved log-probabilities for split {split!r} at {str(path)!r}")
    return np.load(path, allow_pickle=False)


HELD_OUT = ("val", "test")  # the splits a system's bits table row gives
BITS_COLUMNS = [f"{s}_bits_per_{u}" for u in ("char", "byte") for s in HELD_OUT]


def bits_row(scores: Mapping[str, SplitScore]) -> list[float | None]:
    """A system's row of the bits table: bits per character, then per byte, on val and test."""
    return [scores[s].bits_per_char for s in HELD_OUT] + [scores[s].bits_per_byte for s in HELD_OUT]


def bits_per_char_csv(systems: dict[str, list[float | None]]) -> str:
    """``system,val_bits_per_char,test_bits_per_char,val_bits_per_byte,test_bits_per_byte``: one
    row per scored system (a DVC bar plot)."""
    import pandas as pd  # only the evaluate stage writes the table

    table = pd.DataFrame.from_dict(systems, orient="index", columns=BITS_COLUMNS)
    return table.rename_axis("system").to_csv(float_format="%.6f", lineterminator="\n")
