"""Stage ``tokenize``: the splits' token lines: a one-file corpus is first cut into train/val/test by
line index; a pre-split corpus's files are its splits."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from seqlm.core.atomic import remove_outputs
from seqlm.core.stage import parser, run_stage
from seqlm.data.clean import split_lines
from seqlm.data.corpus import tokenize_splits, tokens_path
from seqlm.data.download import corpus_files
from seqlm.data.split import SPLITS
from seqlm.data.tokens import stream, write_token_file
from seqlm.params import SINGLE, TokenizeParams, load_section

log = logging.getLogger("seqlm.stages.tokenize")


def body(args: argparse.Namespace) -> None:
    remove_outputs(*(tokens_path(args.out_dir, s) for s in SPLITS))
    params = load_section(TokenizeParams, "tokenize", args.params)
    files = corpus_files(args.clean_dir)
    lines = {name: split_lines(path.read_text(encoding="utf-8")) for name, path in files.items()}
    for split, token_lines in tokenize_splits(lines.get(SINGLE, lines), params).items():
        write_token_file(tokens_path(args.out_dir, split), token_lines)
        log.info(
            "%s: %d lines, %d %s tokens (line_end %s)",
            split,
            len(token_lines),
            len(stream(token_lines, params)),
            params.token,
            params.line_end,
        )


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--clean-dir", required=True, help="the clean stage's folder")
    ap.add_argument("--out-dir", required=True, help="folder for {train,val,test}.jsonl")
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
