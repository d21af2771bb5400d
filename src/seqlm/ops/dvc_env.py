"""How seqlm's commands run dvc: the dvc installed beside this interpreter, in an environment
whose ``PATH`` starts with this interpreter's folder, so that the stages' ``python -m stages...``
commands find the same environment. A command started as ``.venv/bin/seqlm tune ...`` from a
shell that never activated ``.venv`` then runs its trials (and ``seqlm gate`` its reproduction)
exactly as from an activated one."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path


def dvc_command(*args: str) -> list[str]:
    """``dvc ARGS`` as this interpreter's dvc."""
    return [sys.executable, "-m", "dvc", *args]


def dvc_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment dvc runs in: this interpreter's folder first on ``PATH``, no analytics,
    and ``extra`` on top."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "DVC_NO_ANALYTICS": "1",
        **(extra or {}),
    }
