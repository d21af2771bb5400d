"""Stage ``download``: fetch the corpus file(s) (offline mirror first) and verify each sha1."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from seqlm.core.atomic import remove_outputs
from seqlm.core.stage import parser, run_stage
from seqlm.data.download import corpus_paths, fetch_corpus
from seqlm.params import DownloadParams, load_section


def body(args: argparse.Namespace) -> None:
    remove_outputs(*corpus_paths(args.out_dir))
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
