"""``python -m seqlm.serve``: the same as ``seqlm serve``."""

from __future__ import annotations

import sys

from seqlm.serve import main

sys.exit(main(prog="python -m seqlm.serve"))
