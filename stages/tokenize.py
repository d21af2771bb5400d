"""Stage ``tokenize``: split the cleaned lines into train/val/test by line index, then tokenize."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from seqlm.core.atomic import remove_outputs
from seqlm.data.clean import split_lines
from seqlm.core.stage import parser, run_stage
from seqlm.params import load_section
from seqlm.data.corpus import tokens_path
from seqlm.data.split import SPLITS, split_by_line
from seqlm.data.tokens import TokenizeParams, stream, tokenize_lines, write_token_file

log = logging.getLogger("seqlm.stages.tokenize")


def body(args: argparse.Namespace) -> None:
    remove_outputs(*(tokens_path(args.out_dir, s) for s in SPLITS))
    params = load_section(TokenizeParams, "tokenize", args.params)
    lines = split_lines(Path(args.lines).read_text(encoding="utf-8"))
    blocks = split_by_line(lines, params.train_fraction, params.val_fraction, params.test_fraction)
    for split in SPLITS:
        token_lines = tokenize_lines(blocks[split], params.token)
        write_token_file(tokens_path(args.out_dir, split), token_lines)
        log.info("%s: %d lines (%d non-empty), %d %s tokens", split, len(blocks[split]),
                 len(token_lines), len(stream(token_lines, params.token)), params.token)


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--lines", required=True, help="cleaned lines (the clean stage's output)")
    ap.add_argument("--out-dir", required=True, help="folder for {train,val,test}.jsonl")
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
