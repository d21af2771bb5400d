"""What every stage script shares: logging, the ``--params`` option, clean failure messages."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from seqlm.core.errors import SeqlmError
from seqlm.core.logs import setup_logging
from seqlm.params import DEFAULT_PARAMS


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the shared ``--params`` option."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default=DEFAULT_PARAMS, help="params file (default: %(default)s)")
    return p


def run_stage(
    body: Callable[[argparse.Namespace], None],
    ap: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
) -> int:
    """Parse arguments and run ``body``; a SeqlmError ends the stage with its message and exit code 1."""
    args = ap.parse_args(argv)
    setup_logging()
    try:
        body(args)
    except SeqlmError as e:
        logging.getLogger(ap.prog).debug("stage failed", exc_info=True)
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
