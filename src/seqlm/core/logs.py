"""Logging set-up shared by the stage scripts."""

from __future__ import annotations

import logging
import os


def setup_logging() -> None:
    """Log INFO and above to stderr, with the logger name; ``SEQLM_LOG_LEVEL`` overrides the level."""
    level = os.environ.get("SEQLM_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def progress_disabled() -> bool:
    """Progress bars are off when ``SEQLM_NO_PROGRESS`` is set (tests, CI logs)."""
    return bool(os.environ.get("SEQLM_NO_PROGRESS"))
