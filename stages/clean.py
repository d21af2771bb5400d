"""Stage ``clean``: each raw corpus file → one cleaned line per source line (``clean.mode``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from seqlm.core.atomic import remove_outputs, write_text
from seqlm.core.stage import parser, run_stage
from seqlm.data.clean import clean_text
from seqlm.data.download import corpus_files, corpus_path, corpus_paths
from seqlm.params import CleanParams, load_section

log = logging.getLogger("seqlm.stages.clean")


def body(args: argparse.Namespace) -> None:
    remove_outputs(*corpus_paths(args.out_dir))
    params = load_section(CleanParams, "clean", args.params)
    files = corpus_files(args.raw_dir)
    cleaned = {}
    for name, path in files.items():  # every file cleaned before anything is written
        raw = Path(path).read_bytes()
        log.info("cleaning %s: %d bytes (clean.mode = %s)", path, len(raw), params.mode)
        cleaned[name] = clean_text(raw, params, str(path))
    for name, lines in cleaned.items():
        out = corpus_path(args.out_dir, name)
        write_text(out, "".join(line + "\n" for line in lines))
        log.info("wrote %s: %d lines, %d non-empty", out, len(lines), sum(1 for x in lines if x))


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--raw-dir", required=True, help="the download stage's folder")
    ap.add_argument("--out-dir", required=True, help="cleaned lines, one file per raw file")
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
