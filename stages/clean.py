"""Stage ``clean``: each raw corpus file → one cleaned line per source line (``clean.mode``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from seqlm.core.atomic import atomic_path, remove_outputs
from seqlm.core.stage import parser, run_stage
from seqlm.data.clean import clean_blocks, read_blocks
from seqlm.data.download import corpus_files, corpus_path, corpus_paths
from seqlm.params import CleanParams, load_section

log = logging.getLogger("seqlm.stages.clean")


def body(args: argparse.Namespace) -> None:
    remove_outputs(*corpus_paths(args.out_dir))
    params = load_section(CleanParams, "clean", args.params)
    files = corpus_files(args.raw_dir)
    with ExitStack() as written:  # every file cleaned before any is in place: all or nothing
        for name, path in files.items():
            size = Path(path).stat().st_size
            log.info("cleaning %s: %d bytes (clean.mode = %s)", path, size, params.mode)
            out = corpus_path(args.out_dir, name)
            tmp = written.enter_context(atomic_path(out))  # renamed onto out at the end
            lines = non_empty = 0
            with open(tmp, "w", encoding="utf-8", newline="\n") as f:
                for line in clean_blocks(read_blocks(path), params, str(path)):
                    f.write(line + "\n")
                    lines += 1
                    non_empty += bool(line)
            log.info("wrote %s: %d lines, %d non-empty", out, lines, non_empty)


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--raw-dir", required=True, help="the download stage's folder")
    ap.add_argument("--out-dir", required=True, help="cleaned lines, one file per raw file")
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
