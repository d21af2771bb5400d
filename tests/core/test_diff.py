"""One way to say what differs between two records of settings (seqlm.core.diff)."""

from __future__ import annotations

from seqlm.core.diff import differences, short


def test_each_differing_key_is_named_with_both_values_nested_sections_dotted():
    old = {"model": "lstm", "train": {"lr": 0.01, "epochs": 30}, "processes": 1}
    new = {"model": "lstm", "train": {"lr": 0.02, "epochs": 30}, "processes": 2, "extra": True}
    assert differences(old, new) == [
        "extra (saved None, now True)",
        "processes (saved 1, now 2)",
        "train.lr (saved 0.01, now 0.02)",
    ]
    assert differences({"a": 1}, {"a": 2}, "checkpoint", "params") == ["a (checkpoint 1, params 2)"]
    assert differences(old, old) == []


def test_a_long_value_is_shortened():
    assert short("x" * 10) == repr("x" * 10)
    assert short("y" * 40) == repr("y" * 40)[:12] + "…"
