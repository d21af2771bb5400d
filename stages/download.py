"""Stage ``download``: fetch the corpus (offline mirror first) and verify its sha1."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from seqlm.core.stage import parser, run_stage
from seqlm.data.download import fetch
from seqlm.params import DownloadParams, load_section


def body(args: argparse.Namespace) -> None:
    params = load_section(DownloadParams, "download", args.params)
    fetch(params, args.out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--out", required=True, help="where to write the verified corpus")
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
