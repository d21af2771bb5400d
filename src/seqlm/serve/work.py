"""The model work behind ``seqlm serve``'s endpoints, run in the thread pool: scores, tokens with
their alternatives, and generation that stops at a deadline with what it has."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from seqlm.lm.base import LanguageModel, State
from seqlm.sampling import read_prefix
from seqlm.serve.errors import ApiError


def pick(models: dict[str, LanguageModel], name: str | None) -> tuple[str, LanguageModel]:
    """The model served as ``name`` (None: the first), or a 404 that lists the models."""
    if name is None:
        name = next(iter(models))
    if name not in models:
        raise ApiError(
            404,
            f"no model named {name!r}; this server has: {', '.join(models)}",
            models=list(models),
        )
    return name, models[name]


def check_text(text: str, field: str, max_chars: int) -> None:
    """Refuse a text over ``max_chars`` characters (413) or holding a lone surrogate (400)."""
    if len(text) > max_chars:
        raise ApiError(
            413,
            f"the {field} has {len(text):,} characters, over this server's limit of "
            f"{max_chars:,} (seqlm serve --max-chars)",
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ApiError(
            400,
            f"the {field} is not Unicode text: character {e.start} is a lone surrogate "
            f"(U+{ord(text[e.start]):04X})",
        ) from None


def describe(name: str, lm: LanguageModel) -> dict[str, Any]:
    """A served model as /api/models lists it."""
    record: dict[str, Any] = {
        "name": name,
        "title": lm.name,
        "kind": lm.kind,
        "vocab_size": len(lm.vocab),
        "token": lm.fmt.token,
        "line_end": lm.fmt.line_end,
        "clean": lm.fmt.clean,
    }
    members = getattr(lm, "members", None)
    if members is not None:
        record["members"] = [{"name": m.name, "weight": m.weight} for m in members]
    return record


def score_record(lm: LanguageModel, text: str) -> dict[str, Any]:
    """The text's score and each line's share of it."""
    total, lines = lm.score_lines(text)
    return {
        "total": total.to_record(),
        "lines": [{"line": x.line, **x.score.to_record()} for x in lines],
    }


def logprobs_record(lm: LanguageModel, text: str, top: int) -> dict[str, Any]:
    """The text's score and every token with its log-probability and ``top`` alternatives (those
    the model gives no probability at all left out: JSON has no -inf)."""
    scored = lm.logprobs(text, top=top)
    total = scored.score()
    tokens = scored.records()
    for record in tokens:
        if "alternatives" in record:
            record["alternatives"] = [
                a for a in record["alternatives"] if math.isfinite(a["logprob"])
            ]
    return {"total": total.to_record(), "tokens": tokens}


class PastDeadline(Exception):
    """A generation ran past its time."""


class TimedModel(LanguageModel):
    """``lm`` with a deadline: reading a token after ``deadline`` (``time.monotonic()``) raises
    :class:`PastDeadline`, which ends a generation where it stands."""

    def __init__(self, lm: LanguageModel, deadline: float) -> None:
        super().__init__(lm.name, lm.vocab, lm.fmt)
        self.kind = lm.kind
        self.lm = lm
        self.deadline = deadline

    @property
    def bos_id(self) -> int:
        return self.lm.bos_id

    def banned(self) -> list[int]:
        return self.lm.banned()

    def check(self) -> None:
        """Raise PastDeadline once the deadline has passed."""
        if time.monotonic() > self.deadline:
            raise PastDeadline

    def target_logprobs(self, ids: np.ndarray) -> np.ndarray:
        return self.lm.target_logprobs(ids)

    def begin(self, ids: Sequence[int]) -> tuple[State, np.ndarray]:
        self.check()
        return self.lm.begin(ids)

    def advance(self, state: State, token_id: int) -> tuple[State, np.ndarray]:
        self.check()
        return self.lm.advance(state, token_id)


def collect(start: Callable[[], Iterator[str]]) -> tuple[list[str], bool]:
    """The tokens the generation ``start()`` gives before it ends or runs past its deadline, and
    whether it did (truncated). Beam search runs when started, sampling as it is iterated."""
    tokens: list[str] = []
    try:
        for piece in start():
            tokens.append(piece)
    except PastDeadline:
        return tokens, True
    return tokens, False


def generate_record(
    lm: LanguageModel, prompt: str, max_tokens: int, timeout: float, **settings: Any
) -> dict[str, Any]:
    """Continue ``prompt`` with ``max_tokens`` tokens (``settings``: temperature, top_k, top_p,
    beam, seed); after ``timeout`` seconds stop and answer what was generated."""
    start = time.monotonic()
    shown = read_prefix(prompt, lm.fmt, lm.vocab).text
    timed = TimedModel(lm, start + timeout)
    tokens, truncated = collect(lambda: timed.generate(prompt, max_tokens, **settings))
    record: dict[str, Any] = {
        "prompt": shown,
        "text": "".join(tokens),
        "tokens": tokens,
        "seconds": time.monotonic() - start,
        "truncated": truncated,
    }
    if truncated:
        record["note"] = (
            f"stopped after {timeout:g} s (seqlm serve --timeout) with {len(tokens)} of "
            f"{max_tokens} tokens"
            + ("; beam search gives its tokens only when it ends" if settings.get("beam") else "")
        )
    return record
