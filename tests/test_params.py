from pathlib import Path
from typing import ClassVar, Literal

import pytest
import yaml
from pydantic import ValidationError

from seqlm.core.errors import ParamError
from seqlm.core.schema import Listed, Section
from seqlm.params import (
    SECTIONS,
    CleanParams,
    DownloadParams,
    GenerateParams,
    NgramParams,
    TokenizeParams,
    TrainParams,
    VocabParams,
    build,
    load_section,
)

PARAMS_FILE = Path(__file__).resolve().parents[1] / "params.yaml"


class Example(Section):
    section: ClassVar[str] = "ex"
    size: int
    rate: float = 0.5
    kind: Literal["a", "b"] = "a"
    names: Listed[str] = ()
    flag: bool = False
    order: int | Literal["auto"] = "auto"


def test_a_section_builds_with_an_int_for_a_float_and_a_list_for_a_tuple():
    ex = build(Example, "ex", {"size": 3, "rate": 1, "names": ["x", "y"], "order": 4})
    assert ex == Example(size=3, rate=1.0, names=("x", "y"), order=4)
    assert isinstance(ex.rate, float) and isinstance(ex.names, tuple)


def test_an_unknown_key_is_named_with_the_allowed_ones():
    with pytest.raises(
        ParamError, match=r"unknown key\(s\) in params section 'ex': sise.*allowed: .*size"
    ):
        build(Example, "ex", {"sise": 3})


def test_a_missing_required_key_is_named():
    with pytest.raises(ParamError, match="params section 'ex' is missing required key 'size'"):
        build(Example, "ex", {})


@pytest.mark.parametrize(
    "values, message",
    [
        ({"size": "3"}, r"ex.size = '3' must be an integer"),
        ({"size": True}, r"ex.size = True must be an integer"),
        ({"size": 1.0}, r"ex.size = 1.0 must be an integer"),
        ({"size": 1, "rate": "fast"}, r"ex.rate = 'fast' must be a number"),
        ({"size": 1, "rate": "0.5"}, r"ex.rate = '0.5' must be a number"),
        ({"size": 1, "rate": False}, r"ex.rate = False must be a number"),
        ({"size": 1, "rate": float("nan")}, r"ex.rate = nan must be a finite number"),
        ({"size": 1, "kind": "c"}, r"ex.kind = 'c' is not allowed; choose one of: a, b"),
        ({"size": 1, "flag": "yes"}, r"ex.flag = 'yes' must be true or false"),
        ({"size": 1, "flag": 1}, r"ex.flag = 1 must be true or false"),
        ({"size": 1, "names": "x"}, r"ex.names = 'x' must be a list"),
        ({"size": 1, "names": ["x", 2]}, r"ex.names\[1\] = 2 must be a string"),
        ({"size": 1, "order": "best"}, r"ex.order = 'best' has the wrong type"),
    ],
)
def test_a_mistyped_value_is_refused_strictly_with_its_key_and_value(values, message):
    with pytest.raises(ParamError, match=message):
        build(Example, "ex", values)


def test_every_bad_key_of_a_section_is_named_at_once():
    with pytest.raises(ParamError) as e:
        Example(size="3", flag="yes")
    assert "ex.size = '3'" in str(e.value) and "ex.flag = 'yes'" in str(e.value)


def test_keyword_construction_refuses_bad_values_with_a_param_error_not_a_pydantic_one():
    with pytest.raises(ParamError, match=r"^train.lr = -1.0 must be a number > 0$"):
        TrainParams(lr=-1.0)
    refused = "train.optimizer = 'rmsprop' is not allowed; choose one of: sgd, adam, adamw"
    with pytest.raises(ParamError, match=refused):
        TrainParams(optimizer="rmsprop")
    with pytest.raises(
        ParamError, match=r"unknown key\(s\) in params section 'train': lrr; allowed: "
    ):
        TrainParams(lrr=0.1)
    with pytest.raises(
        ParamError, match="download needs url and sha1 .one file split by fractions. or splits"
    ):
        DownloadParams(url="https://example.org/a.txt")


def test_a_section_is_frozen_and_hashable():
    params = TrainParams()
    with pytest.raises(ValidationError, match="frozen"):
        params.lr = 0.1  # type: ignore[misc]
    assert params == TrainParams() and hash(params) == hash(TrainParams())


def test_replace_gives_a_validated_copy():
    params = TrainParams()
    assert params.replace(epochs=3).epochs == 3 and params.epochs == 30
    with pytest.raises(ParamError, match="train.epochs = 0 must be an integer >= 1"):
        params.replace(epochs=0)


@pytest.mark.parametrize(
    "cls, values, message",
    [
        (
            TrainParams,
            {"lr": 0.01, "min_lr": 0.1},
            "train.min_lr = 0.1 must not exceed train.lr = 0.01",
        ),
        (TrainParams, {"momentum": 1.0}, r"train.momentum = 1.0 must be in \[0, 1\)"),
        (
            TrainParams,
            {"eval_every": 500, "eval_minutes": 2.0},
            "train.eval_every = 500 and train.eval_minutes = 2.0 both set when to validate",
        ),
        (TrainParams, {"plateau_factor": 1.0}, r"train.plateau_factor = 1.0 must be in \(0, 1\)"),
        (
            TrainParams,
            {"budget_minutes": float("inf")},
            "train.budget_minutes = inf must be a finite number",
        ),
        (TokenizeParams, {"train_fraction": 0.5}, "tokenize split fractions must sum to 1"),
        (
            TokenizeParams,
            {"token": 3},
            "tokenize.token = 3 is not a tokenization; choose one of: word, char",
        ),
        (VocabParams, {"reserved": "<bos>"}, "vocab.reserved = '<bos>' must be a list"),
        (
            DownloadParams,
            {"url": "https://a/b", "sha1": "0" * 40, "retries": -1},
            "download.retries = -1",
        ),
        (
            DownloadParams,
            {"url": "https://a/b", "sha1": "0" * 40, "timeout_s": 0},
            "download.timeout_s = 0",
        ),
        (
            CleanParams,
            {"strip_gutenberg": "no"},
            "clean.strip_gutenberg = 'no' must be true or false",
        ),
        (
            NgramParams,
            {"order": True},
            "ngram.order = True is not allowed; use an integer >= 1 or 'auto'",
        ),
        (GenerateParams, {"prefixes": ["a", 1]}, r"generate.prefixes\[1\] = 1 must be a string"),
    ],
)
def test_each_sections_rules_name_the_key_and_what_is_allowed(cls, values, message):
    with pytest.raises(ParamError, match=message):
        build(cls, cls.section, values)


def test_the_committed_params_file_loads_into_every_section():
    params = yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))
    for name, cls in SECTIONS.items():
        assert cls.section == name
        assert load_section(cls, name, PARAMS_FILE) == build(cls, name, params[name] or {})
    assert isinstance(load_section(GenerateParams, "generate", PARAMS_FILE).prefixes, tuple)


def test_the_data_steps_use_the_sections_defined_here():
    from seqlm.data import clean, corpus, download, split, tokens, vocab

    assert (download.DownloadParams, clean.CleanParams) == (DownloadParams, CleanParams)
    assert (corpus.TokenizeParams, vocab.VocabParams) == (TokenizeParams, VocabParams)
    for module in (clean, corpus, download, split, tokens, vocab):
        own = [
            name
            for name, value in vars(module).items()
            if isinstance(value, type)
            and name.endswith("Params")
            and not value.__module__.startswith("seqlm.params.")
        ]
        assert own == [], f"{module.__name__} defines a params section of its own: {own}"


def test_a_section_must_be_a_mapping():
    with pytest.raises(ParamError, match=r"params section 'ex' must be a mapping, got \[1\]"):
        build(Example, "ex", [1])  # type: ignore[arg-type]


def test_a_missing_section_or_file_is_reported(tmp_path):
    params = tmp_path / "params.yaml"
    with pytest.raises(ParamError, match="does not exist"):
        load_section(Example, "ex", params)
    params.write_text("other: {}\n")
    with pytest.raises(ParamError, match="has no section 'ex'"):
        load_section(Example, "ex", params)
