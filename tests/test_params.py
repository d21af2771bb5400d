from dataclasses import dataclass
from typing import Literal

import pytest

from seqlm.params import build, load_section
from seqlm.core.errors import ParamError


@dataclass(frozen=True)
class Example:
    size: int
    rate: float = 0.5
    kind: Literal["a", "b"] = "a"
    names: tuple[str, ...] = ()
    flag: bool = False
    order: int | Literal["auto"] = "auto"


def test_a_section_builds_its_dataclass_with_conversions():
    ex = build(Example, "ex", {"size": 3, "rate": 1, "names": ["x", "y"], "order": 4})
    assert ex == Example(size=3, rate=1.0, names=("x", "y"), order=4)
    assert isinstance(ex.rate, float)


def test_an_unknown_key_is_named_with_the_allowed_ones():
    with pytest.raises(ParamError, match=r"unknown key\(s\) in params section 'ex': sise.*allowed: .*size"):
        build(Example, "ex", {"sise": 3})


def test_a_missing_required_key_is_named():
    with pytest.raises(ParamError, match="missing required key 'size'"):
        build(Example, "ex", {})


@pytest.mark.parametrize(
    "values, message",
    [
        ({"size": "3"}, r"ex.size = '3' must be an integer"),
        ({"size": True}, r"ex.size = True must be an integer"),
        ({"size": 1, "rate": "fast"}, r"ex.rate = 'fast' must be a number"),
        ({"size": 1, "kind": "c"}, r"ex.kind = 'c' is not allowed; choose one of: a, b"),
        ({"size": 1, "flag": "yes"}, r"ex.flag = 'yes' must be true or false"),
        ({"size": 1, "names": "x"}, r"ex.names = 'x' must be a list"),
        ({"size": 1, "order": "best"}, r"ex.order = 'best' has the wrong type"),
    ],
)
def test_a_mistyped_value_is_refused_with_its_key_and_value(values, message):
    with pytest.raises(ParamError, match=message):
        build(Example, "ex", values)


def test_a_missing_section_or_file_is_reported(tmp_path):
    params = tmp_path / "params.yaml"
    with pytest.raises(ParamError, match="does not exist"):
        load_section(Example, "ex", params)
    params.write_text("other: {}\n")
    with pytest.raises(ParamError, match="has no section 'ex'"):
        load_section(Example, "ex", params)
