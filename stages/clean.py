"""Stage ``clean``: raw corpus → one cleaned line per source line (letters and single spaces)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from seqlm.core.atomic import remove_outputs, write_text
from seqlm.core.stage import parser, run_stage
from seqlm.data.clean import clean_text
from seqlm.params import CleanParams, load_section

log = logging.getLogger("seqlm.stages.clean")


def body(args: argparse.Namespace) -> None:
    remove_outputs(args.out)
    params = load_section(CleanParams, "clean", args.params)
    raw = Path(args.corpus).read_bytes()
    log.info("cleaning %s: %d bytes", args.corpus, len(raw))
    lines = clean_text(raw, params)
    write_text(args.out, "".join(line + "\n" for line in lines))
    log.info("wrote %s: %d lines, %d non-empty", args.out, len(lines), sum(1 for x in lines if x))


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--corpus", required=True, help="raw corpus (the download stage's output)")
    ap.add_argument("--out", required=True, help="cleaned lines, one per source line")
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
