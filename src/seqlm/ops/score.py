"""``seqlm score``: score text with a trained model, per line and in total, under the convention.

Each FILE (``-`` for standard input) is read as one stream from a fresh start, exactly as the
pipeline reads a split (:mod:`seqlm.lm.text`): scoring a split's text gives the figures of
``metrics/eval.json`` for that split. Each line's row is its share of that stream (its tokens and
its line end), so the lines' nll add up to the total. Output: a table (default), JSON lines
(``--json``), or with ``--tokens`` every token's natural-log probability as TSV, like KenLM's
``query``.

    seqlm score data/tokens/test.txt                       # the neural model (data/model)
    echo "the time traveller" | seqlm score --ngram data/ngram --model data/model -
    seqlm score --ensemble data/ensemble.json --json notes.txt
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from seqlm.core.errors import SeqlmError
from seqlm.core.threads import limit_threads
from seqlm.data.vocab import escape
from seqlm.lm import LanguageModel, load
from seqlm.perplexity import SplitScore

DEFAULT_MODEL = "data/model/model.pt"
COLUMNS = ("tokens", "oov", "nll", "perplexity", "bits_per_char", "bits_per_byte")


def read_input(name: str) -> bytes:
    """The bytes of a file, or of standard input for ``-``."""
    if name == "-":
        return sys.stdin.buffer.read()
    p = Path(name)
    if not p.is_file():
        raise SeqlmError(f"{name!r} is not a file")
    return p.read_bytes()


def models_of(args: argparse.Namespace) -> list[LanguageModel]:
    """The models asked for (``--model`` by default), loaded once each."""
    paths = [*args.model, *args.ngram, *args.ensemble] or [DEFAULT_MODEL]
    return [load(p, args.device) for p in paths]


def row(model: str, file: str, line: int | None, s: SplitScore) -> dict[str, object]:
    return {"model": model, "file": file, "line": line, **{c: getattr(s, c) for c in COLUMNS}}


def table(rows: list[dict[str, object]], out: TextIO) -> None:
    """Rows as an aligned text table (the total of a file on the line named ``total``)."""
    head = ["model", "file", "line", *COLUMNS]
    cells = [head]
    for r in rows:
        cells.append(
            [
                str(r["model"]),
                str(r["file"]),
                "total" if r["line"] is None else str(r["line"]),
                str(r["tokens"]),
                str(r["oov"]),
                f"{r['nll']:.4f}",
                f"{r['perplexity']:.4f}",
                f"{r['bits_per_char']:.4f}",
                f"{r['bits_per_byte']:.4f}",
            ]
        )
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    for c in cells:
        out.write(
            "  ".join(
                v.rjust(w) if i > 2 else v.ljust(w) for i, (v, w) in enumerate(zip(c, widths))
            ).rstrip()
            + "\n"
        )


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``seqlm score [FILE ...|-]``; returns the exit status (2 on bad input)."""
    ap = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "files", nargs="*", default=["-"], metavar="FILE", help="text files; - is stdin"
    )
    ap.add_argument(
        "--model", action="append", default=[], help=f"a neural model (default {DEFAULT_MODEL})"
    )
    ap.add_argument(
        "--ngram", action="append", default=[], help="an n-gram model (data/ngram or an .arpa)"
    )
    ap.add_argument(
        "--ensemble", action="append", default=[], help="an ensemble (data/ensemble.json)"
    )
    ap.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    ap.add_argument("--total", action="store_true", help="only each file's total, not its lines")
    ap.add_argument("--tokens", action="store_true", help="each token's log-probability (TSV)")
    ap.add_argument("--device", default="cpu", help="torch device for neural models (default cpu)")
    args = ap.parse_args(argv)
    limit_threads()  # SEQLM_THREADS / OMP_NUM_THREADS, as the stages do
    out = sys.stdout
    try:
        texts = {name: read_input(name) for name in args.files}
        models = models_of(args)
        shown: list[dict[str, object]] = []  # the table's rows, printed at the end
        if args.tokens:
            out.write("model\tfile\tline\ttoken\tlogprob\toov\n")
        for lm in models:
            for name, raw in texts.items():
                start = time.perf_counter()
                if args.tokens:
                    for r in lm.logprobs(raw).records():
                        out.write(
                            f"{lm.name}\t{name}\t{r['line']}\t{escape(r['token'])}\t"
                            f"{r['logprob']:.6f}\t{int(r['oov'])}\n"
                        )
                    continue
                if args.total:
                    total, lines = lm.score(raw), []
                else:
                    total, lines = lm.score_lines(raw)
                rows = [row(lm.name, name, x.line, x.score) for x in lines]
                rows.append(row(lm.name, name, None, total))
                if args.json:
                    for r in rows:
                        out.write(json.dumps(r) + "\n")
                else:
                    shown.extend(rows)
                print(
                    f"{lm.name} {name}: {total.tokens} tokens in "
                    f"{time.perf_counter() - start:.2f} s",
                    file=sys.stderr,
                )
        if shown:
            table(shown, out)
    except SeqlmError as e:
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
