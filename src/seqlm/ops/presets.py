"""Presets: ``conf/`` composed by Hydra into ``params.yaml``, as ``dvc exp run`` does it.

``conf/config.yaml`` holds the defaults and names the groups: ``dataset`` (``conf/dataset/*.yaml``:
files, cleaning, tokenization, line ends, vocabulary, and the dataset's n-gram, sampling and training
settings) and ``recipe`` (``conf/recipe/*.yaml``: a published ``net``/``train`` recipe, none by
default). ``dvc exp run -S dataset=ptb -S recipe=zaremba_small -S train.epochs=2`` composes them in
that order (later wins) into ``params.yaml``, which every stage reads.

``seqlm params [OVERRIDE ...]`` writes ``params.yaml`` the same way, so the committed file is exactly
what a ``dvc exp run`` without ``-S`` would compose (a test checks it); an unknown preset is refused
with the list of the known ones.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from seqlm.core.errors import ParamError

CONF_DIR = "conf"
CONFIG_NAME = "config"
PARAMS_FILE = "params.yaml"
HEADER = (
    "# Composed from conf/ by `seqlm params` (and by every `dvc exp run`): edit conf/, not this\n"
    '# file. Every key is documented in README.md ("Parameters").\n'
)


def presets(group: str, conf_dir: str | Path = CONF_DIR) -> list[str]:
    """The names of a group's presets (``dataset``, ``recipe``), sorted."""
    return sorted(p.stem for p in (Path(conf_dir) / group).glob("*.yaml"))


def dvc_compose_and_dump() -> Callable[..., None]:
    """DVC's Hydra composition, ``dvc.utils.hydra.compose_and_dump(output_file, config_dir,
    config_module, config_name, plugins_path, overrides)``: the code ``dvc exp run -S`` composes
    ``params.yaml`` with. It is DVC's internal API, reached from here only; a DVC that moved it
    is a ParamError saying so (``tests/ops/test_presets.py`` checks it on every test run)."""
    try:
        from dvc.utils.hydra import compose_and_dump
    except ImportError as e:
        raise ParamError(
            f"this DVC has no dvc.utils.hydra.compose_and_dump ({e}): seqlm composes params.yaml "
            "as `dvc exp run` does through that internal function; use the DVC version pinned in "
            "requirements.lock, or port seqlm.ops.presets.dvc_compose_and_dump"
        ) from None
    return compose_and_dump


def compose_params(
    overrides: Sequence[str] = (), out: str | Path = PARAMS_FILE, conf_dir: str | Path = CONF_DIR
) -> dict[str, Any]:
    """Compose ``conf_dir`` with Hydra ``overrides`` into ``out``; returns the params written."""
    from hydra.errors import HydraException

    compose_and_dump = dvc_compose_and_dump()
    conf = Path(conf_dir).resolve()
    try:
        compose_and_dump(str(out), str(conf), None, CONFIG_NAME, str(conf.parent), list(overrides))
    except HydraException as e:
        known = "; ".join(f"{g}: {', '.join(presets(g, conf))}" for g in ("dataset", "recipe"))
        raise ParamError(f"{e}\n(presets in {conf_dir}/: {known})") from None
    text = Path(out).read_text(encoding="utf-8")
    Path(out).write_text(HEADER + text, encoding="utf-8")
    return yaml.safe_load(text)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``seqlm params [OVERRIDE ...]``: rewrite params.yaml from conf/ (e.g. ``dataset=ptb``)."""
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, as dvc exp run -S takes them")
    ap.add_argument("--out", default=PARAMS_FILE, help="where to write (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        compose_params(args.overrides, args.out)
    except ParamError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} from {CONF_DIR}/ {' '.join(args.overrides)}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
