"""The base of every params schema: strict, closed, frozen pydantic models whose refusals are ParamError.

A :class:`Section` validates strictly (a string is not a number, a bool is not an integer; an integer
is accepted where a float is expected and becomes a float), refuses unknown keys and cannot be
changed once built. Pydantic's ``ValidationError`` is translated into a :class:`ParamError` in one
place, :func:`param_error`, whose message names each bad key as ``<section>.<key> = <value>`` and
says what is allowed. The schemas themselves live in :mod:`seqlm.params`.
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from seqlm.core.errors import ParamError

T = TypeVar("T")


class Allowed:
    """Field metadata: what a refused value is told, after ``<section>.<key> = <value>``.

    For fields whose generated wording would say less (a name for the choices, what 0 means). A
    plain type error (a string for an integer, say) keeps the generated wording.
    """

    def __init__(self, text: str) -> None:
        self.text = text


class Section(BaseModel):
    """Base of every section: strict types, no unknown keys, frozen; errors are ParamError.

    ``section`` is the section's name, the prefix of every key in messages. Building a section
    with keywords (``TrainParams(epochs=2)``) runs every check a params file gets.
    """

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)
    section: ClassVar[str] = "params"

    def __init__(self, /, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise param_error(type(self), e) from None

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied, validated like the original."""
        return type(self)(**{**dict(self), **changes})


def choices(literal: Any) -> tuple[str, ...]:
    """The values of a ``Literal`` type, in order."""
    return typing.get_args(literal)


def _list_to_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


Listed = Annotated[tuple[T, ...], BeforeValidator(_list_to_tuple)]
"""A tuple field that also takes a list (what YAML gives); each item is strictly a ``T``."""

Count = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]

TYPE_RULES = {
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
}


def param_error(cls: type[Section], error: ValidationError) -> ParamError:
    """Translate pydantic's ValidationError for ``cls`` into a ParamError naming each bad key."""
    section, problems = cls.section, error.errors(include_url=False)
    unknown = sorted(str(p["loc"][0]) for p in problems if p["type"] == "extra_forbidden")
    if unknown:
        return ParamError(
            f"unknown key(s) in params section {section!r}: {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(cls.model_fields))}"
        )
    messages: list[str] = []
    by_key: dict[str, list[Any]] = {}
    for p in problems:
        if isinstance(p.get("ctx", {}).get("error"), ParamError):
            messages.append(str(p["ctx"]["error"]))  # a rule of the section, already worded
        elif p["type"] == "missing":
            messages.append(f"params section {section!r} is missing required key {p['loc'][0]!r}")
        elif not p["loc"]:
            messages.append(f"params section {section!r}: {p['msg']}")
        else:
            by_key.setdefault(str(p["loc"][0]), []).append(p)
    for name, items in by_key.items():
        messages.append(_describe(section, name, cls.model_fields[name], items))
    return ParamError("; ".join(dict.fromkeys(messages)))


def _describe(section: str, name: str, field: FieldInfo, items: list[Any]) -> str:
    """``<section>.<key> = <value> <what is allowed>`` for the refusals of one field."""
    first, kind = items[0], items[0]["type"]
    index = "".join(f"[{part}]" for part in first["loc"][1:] if isinstance(part, int))
    said = next((m.text for m in field.metadata if isinstance(m, Allowed)), None)
    if len(items) == 1 and kind in TYPE_RULES:
        rule = TYPE_RULES[kind]
    elif said is not None:
        rule = said
    elif len(items) > 1:  # every option of a union refused it
        rule = f"has the wrong type: expected {field.annotation}"
    elif kind == "literal_error":
        choices = re.findall(r"'([^']*)'", first["ctx"]["expected"])
        rule = f"is not allowed; choose one of: {', '.join(choices)}"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        rule = f"must be {_range(field)}"
    else:
        rule = f"is refused: {first['msg']}"
    return f"{section}.{name}{index} = {first['input']!r} {rule}"


def _range(field: FieldInfo) -> str:
    """The bounds of a numeric field in words: ``an integer >= 1``, ``in [0, 1)``, ..."""
    bound = {
        name: next((getattr(m, name) for m in field.metadata if hasattr(m, name)), None)
        for name in ("ge", "gt", "lt", "le")
    }
    low = ("[", bound["ge"]) if bound["ge"] is not None else ("(", bound["gt"])
    high = (")", bound["lt"]) if bound["lt"] is not None else ("]", bound["le"])
    if low[1] is not None and high[1] is not None:
        return f"in {low[0]}{low[1]}, {high[1]}{high[0]}"
    kind = "an integer" if field.annotation is int else "a number"
    if low[1] is not None:
        return f"{kind} {'>=' if low[0] == '[' else '>'} {low[1]}"
    return f"{kind} {'<' if high[0] == ')' else '<='} {high[1]}"
