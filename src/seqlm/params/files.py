"""Reading ``params.yaml``: the whole file, or one section into its schema."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from seqlm.core.errors import ParamError
from seqlm.core.schema import Section

S = TypeVar("S", bound=Section)

DEFAULT_PARAMS = "params.yaml"


def read_params(path: str | os.PathLike[str] = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read the whole params file as a mapping."""
    p = Path(path)
    if not p.is_file():
        raise ParamError(f"params file {str(p)!r} does not exist")
    data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ParamError(f"params file {str(p)!r} must hold a mapping, got {type(data).__name__}")
    return data


def build(cls: type[S], section: str, values: Mapping[str, Any]) -> S:
    """Validate ``values``, params section ``section``, into ``cls`` (which names its keys)."""
    if not isinstance(values, Mapping):
        raise ParamError(f"params section {section!r} must be a mapping, got {values!r}")
    return cls(**{str(key): value for key, value in values.items()})


def load_section(cls: type[S], section: str, path: str | os.PathLike[str] = DEFAULT_PARAMS) -> S:
    """Read section ``section`` of the params file into ``cls``."""
    params = read_params(path)
    if section not in params:
        raise ParamError(f"params file {str(path)!r} has no section {section!r}")
    return build(cls, section, params[section] or {})
