"""Stage ``tokenize``: split the cleaned lines into train/val/test by line index, then tokenize."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from seqlm.core.atomic import remove_outputs
from seqlm.core.stage import parser, run_stage
from seqlm.data.clean import split_lines
from seqlm.data.corpus import tokenize_splits, tokens_path
from seqlm.data.split import SPLITS
from seqlm.data.tokens import stream, write_token_file
from seqlm.params import TokenizeParams, load_section

log = logging.getLogger("seqlm.stages.tokenize")


def body(args: argparse.Namespace) -> None:
    remove_outputs(*(tokens_path(args.out_dir, s) for s in SPLITS))
    params = load_section(TokenizeParams, "tokenize", args.params)
    lines = split_lines(Path(args.lines).read_text(encoding="utf-8"))
    for split, token_lines in tokenize_splits(lines, params).items():
        write_token_file(tokens_path(args.out_dir, split), token_lines)
        log.info(
            "%s: %d non-empty lines, %d %s tokens",
            split,
            len(token_lines),
            len(stream(token_lines, params.token)),
            params.token,
        )


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--lines", required=True, help="cleaned lines (the clean stage's output)")
    ap.add_argument("--out-dir", required=True, help="folder for {train,val,test}.jsonl")
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
