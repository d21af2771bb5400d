"""ARPA back-off files: write a Kneser-Ney model the way KenLM's ``lmplz`` does, and read one back.

For interpolated Kneser-Ney the ARPA probability of a stored n-gram is its *interpolated*
probability and its back-off weight is its ``γ`` as a context (1, written ``0``, where it is never
followed by anything); all in log10. The begin marker's unigram gets probability ``-99`` (it is
never predicted) and keeps its back-off. A toolkit then recovers every probability with the usual
back-off rule, ``p(w | h) = p(w | h') · b(h)`` for an unseen ``h w``, which is the interpolation.

The reader is small and plain (a dict per order); it is there for round-trip checks, not speed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqlm.core.atomic import atomic_path
from seqlm.core.errors import DataError
from seqlm.ngram.kneser_ney import KneserNeyModel

NEVER = (
    -99.0
)  # log10 probability written for the begin marker (and any id the model never predicts)
FLOAT = "%.8g"


def _log10(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        out = np.log10(p)
    return np.where(p > 0, np.minimum(out, 0.0), NEVER)


def write_arpa(model: KneserNeyModel, names: Sequence[str], path: str | os.PathLike[str]) -> Path:
    """Write ``model`` as an ARPA file, id ``i`` spelt ``names[i]``; atomically."""
    counts = model.counts
    if len(names) != counts.vocab_size:
        raise DataError(f"need one name per id: {len(names)} names for {counts.vocab_size} ids")
    words = np.asarray(names, dtype=object)
    texts = [words]
    for k in range(2, model.order + 1):
        texts.append(texts[-1][counts.prefix(k)] + " " + words[counts.last(k)])
    target = Path(path)
    with atomic_path(target) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write("\\data\\\n")
            for k in range(1, model.order + 1):
                f.write(f"ngram {k}={counts.rows(k)}\n")
            for k in range(1, model.order + 1):
                f.write(f"\n\\{k}-grams:\n")
                logp = _log10(model.complete[k - 1])
                if k == 1:
                    logp[counts.bos_id] = NEVER
                cols = [np.char.mod(FLOAT, logp).astype(object), texts[k - 1]]
                if k < model.order:
                    cols.append(np.char.mod(FLOAT, np.log10(model.backoff[k - 1])).astype(object))
                lines = cols[0] + "\t" + cols[1]
                if len(cols) == 3:
                    lines = lines + "\t" + cols[2]
                f.write("\n".join(lines.tolist()))
                f.write("\n")
            f.write("\n\\end\\\n")
    return target


@dataclass(frozen=True)
class ArpaModel:
    """An ARPA back-off model held as dicts: ``grams[k − 1][words] = (log10 p, log10 backoff)``."""

    order: int
    grams: tuple[dict[tuple[str, ...], tuple[float, float]], ...]
    bos: str = "<s>"
    eos: str = "</s>"
    unk: str = "<unk>"

    def log10_prob(self, context: Sequence[str], word: str) -> float:
        """log10 ``p(word | context)`` by the back-off rule."""
        if (word,) not in self.grams[0]:
            word = self.unk
        context = tuple(context)[max(0, len(context) - (self.order - 1)) :]
        backoff = 0.0
        for start in range(len(context) + 1):
            h = context[start:]
            entry = self.grams[len(h)].get((*h, word))
            if entry is not None:
                return backoff + entry[0]
            if h:
                backoff += self.grams[len(h) - 1].get(h, (0.0, 0.0))[1]
        raise DataError(f"the ARPA model has no unigram for {word!r} and no {self.unk!r}")

    def score(self, words: Sequence[str], bos: bool = True, eos: bool = True) -> list[float]:
        """log10 probability of each word of a sentence (and of ``</s>`` when ``eos``)."""
        context: list[str] = [self.bos] if bos else []
        out = []
        for w in [*words, *([self.eos] if eos else [])]:
            out.append(self.log10_prob(context, w))
            context.append(w)
        return out


def read_arpa(path: str | os.PathLike[str]) -> ArpaModel:
    """Read an ARPA file (as :func:`write_arpa`, KenLM or SRILM write them)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"ARPA file {str(p)!r} does not exist")
    declared: dict[int, int] = {}
    grams: list[dict[tuple[str, ...], tuple[float, float]]] = []
    order = 0
    section = "start"
    for n, raw in enumerate(p.read_text(encoding="utf-8").split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        if line == "\\data\\":
            section = "data"
        elif line == "\\end\\":
            break
        elif line.startswith("\\") and line.endswith("-grams:"):
            order = int(line[1:].split("-")[0])
            while len(grams) < order:
                grams.append({})
            section = "grams"
        elif section == "data" and line.startswith("ngram "):
            k, _, cnt = line[6:].partition("=")
            declared[int(k)] = int(cnt)
        elif section == "grams":
            fields = line.split()
            if len(fields) not in (order + 1, order + 2):
                raise DataError(f"{p}:{n}: expected log10 p, {order} words and maybe a backoff")
            backoff = float(fields[order + 1]) if len(fields) == order + 2 else 0.0
            grams[order - 1][tuple(fields[1 : order + 1])] = (float(fields[0]), backoff)
        else:
            raise DataError(f"{p}:{n}: unexpected line {raw[:60]!r}")
    for k, cnt in declared.items():
        if k > len(grams) or len(grams[k - 1]) != cnt:
            have = len(grams[k - 1]) if k <= len(grams) else 0
            raise DataError(f"{p}: header declares {cnt} {k}-grams, the file holds {have}")
    if not grams:
        raise DataError(f"{p} holds no n-grams")
    return ArpaModel(order=len(grams), grams=tuple(grams))
