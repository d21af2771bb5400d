"""Stage ``download``: fetch the corpus file(s) (offline mirror first) and verify each sha1."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from seqlm.core.atomic import remove_outputs
from seqlm.core.stage import parser, run_stage
from seqlm.data.download import fetch_corpus, raw_path
from seqlm.params import SINGLE, SPLIT_NAMES, DownloadParams, load_section


def body(args: argparse.Namespace) -> None:
    remove_outputs(*(raw_path(args.out_dir, name) for name in (SINGLE, *SPLIT_NAMES)))
    params = load_section(DownloadParams, "download", args.params)
    fetch_corpus(params, args.out_dir)


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument(
        "--out-dir",
        required=True,
        help="folder for the verified corpus: corpus.txt, or train.txt, val.txt and test.txt",
    )
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
