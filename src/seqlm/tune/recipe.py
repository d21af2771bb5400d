"""The end of a study: its best trial as a recipe (``conf/recipe/tuned-<dataset>.yaml``) and its
trials as rows to print."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from seqlm.core.atomic import write_text
from seqlm.tune.trials import Tuning, shown


def best_trial(study: Any) -> Any | None:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return min(complete, key=lambda t: (t.value, t.number)) if complete else None


def nested(values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"train.lr": 1}`` → ``{"train": {"lr": 1}}`` (``model`` stays at the top)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        section, _, name = key.partition(".")
        if name:
            out.setdefault(section, {})[name] = value
        else:
            out[section] = value
    return out


def recipe_name(dataset: str) -> str:
    return f"tuned-{dataset}"


def recipe_text(tuning: Tuning, study: Any, trial: Any) -> str:
    """The best trial as a recipe (``conf/recipe/tuned-<dataset>.yaml``), its figures in a comment."""
    values = {**tuning.search.fixed, **trial.params}
    counts = {
        state: sum(t.state.name == state for t in study.get_trials(deepcopy=False))
        for state in ("COMPLETE", "PRUNED", "FAIL")
    }
    budget = values.get("train.budget_minutes", tuning.trial_minutes)
    head = [
        "# @package _global_",
        f"# Tuned on val by `seqlm tune {tuning.search_name} --dataset {tuning.dataset}` "
        f"({tuning.search_file or tuning.search_name}; study {tuning.study_name!r}):",
        f"# trial {trial.number}, best val perplexity {trial.value:.4f}"
        + (f" with a training budget of {budget:g} minutes" if budget else ""),
        f"# ({counts['COMPLETE']} trials completed, {counts['PRUNED']} pruned, {counts['FAIL']} failed).",
        f"#   dvc exp run -S dataset={tuning.dataset} -S recipe={recipe_name(tuning.dataset)}",
    ]
    body = {"recipe": recipe_name(tuning.dataset), **nested(values)}
    return "\n".join(head) + "\n" + yaml.safe_dump(body, sort_keys=False)


def write_recipe(tuning: Tuning, study: Any, conf_dir: Path) -> Path | None:
    """Write the best trial as a recipe; None when no trial has completed."""
    trial = best_trial(study)
    if trial is None:
        return None
    path = conf_dir / "recipe" / f"{recipe_name(tuning.dataset)}.yaml"
    write_text(path, recipe_text(tuning, study, trial))
    return path


def trial_rows(study: Any) -> Sequence[tuple[int, str, str, str]]:
    """(number, state, val perplexity, params) of every trial, in order."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        value = f"{t.value:.4f}" if t.value is not None else "-"
        if t.state.name == "PRUNED" and t.intermediate_values:
            last = max(t.intermediate_values)
            value = f"({t.intermediate_values[last]:.4f} at evaluation {last})"
        params = ", ".join(f"{k}={shown(v)}" for k, v in t.params.items())
        rows.append((t.number, t.state.name.lower(), value, params))
    return rows
