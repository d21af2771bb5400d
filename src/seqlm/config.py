"""Typed parameters: one frozen dataclass per ``params.yaml`` section.

``load_section`` reads one section and builds its dataclass. Unknown keys, missing required keys and
values of the wrong type are errors that name the key, so a typo in ``params.yaml`` (or in
``dvc exp run -S``) fails loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from seqlm.errors import ParamError

T = TypeVar("T")

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


def _check_type(section: str, key: str, value: Any, annotation: Any) -> Any:
    """Return ``value`` converted to ``annotation`` where that is lossless, else raise ParamError."""
    origin = typing.get_origin(annotation)
    where = f"{section}.{key}"
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(annotation):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check_type(section, key, value, option)
            except ParamError as e:
                errors.append(str(e))
        raise ParamError(f"{where} = {value!r} has the wrong type: expected {annotation}")
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise ParamError(
                f"{where} = {value!r} is not allowed; choose one of: {', '.join(map(str, allowed))}"
            )
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ParamError(f"{where} = {value!r} must be a list")
        (item_type, *_rest) = typing.get_args(annotation) or (Any,)
        return tuple(_check_type(section, key, v, item_type) for v in value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ParamError(f"{where} = {value!r} must be true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(f"{where} = {value!r} must be an integer")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(f"{where} = {value!r} must be a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ParamError(f"{where} = {value!r} must be a string")
        return value
    raise TypeError(f"unsupported annotation {annotation!r} for {where}")  # programming error


def check_integers(section: str, obj: object, minimums: Mapping[str, int]) -> None:
    """Raise ParamError unless every ``obj.<key>`` is an integer >= ``minimums[key]``.

    For the sections' ``__post_init__``: a dataclass built directly, not through :func:`build`,
    gets the same checks and messages.
    """
    for key, low in minimums.items():
        value = getattr(obj, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ParamError(f"{section}.{key} = {value!r} must be an integer >= {low}")


def check_choices(section: str, obj: object, choices: Mapping[str, Sequence[str]]) -> None:
    """Raise ParamError unless every ``obj.<key>`` is one of ``choices[key]``."""
    for key, allowed in choices.items():
        value = getattr(obj, key)
        if value not in allowed:
            raise ParamError(
                f"{section}.{key} = {value!r} is not allowed; choose one of: {', '.join(allowed)}"
            )


def build(cls: type[T], section: str, values: Mapping[str, Any]) -> T:
    """Build dataclass ``cls`` from ``values``, naming any unknown, missing or mistyped key."""
    if not isinstance(values, Mapping):
        raise ParamError(f"params section {section!r} must be a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ParamError(
            f"unknown key(s) in params section {section!r}: {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        if name in values:
            kwargs[name] = _check_type(section, name, values[name], hints[name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ParamError(f"params section {section!r} is missing required key {name!r}")
    return cls(**kwargs)


def load_section(cls: type[T], section: str, path: str | os.PathLike[str] = DEFAULT_PARAMS) -> T:
    """Read section ``section`` of the params file into dataclass ``cls``."""
    params = read_params(path)
    if section not in params:
        raise ParamError(f"params file {str(path)!r} has no section {section!r}")
    return build(cls, section, params[section] or {})
