"""``seqlm tune SEARCH``: search params on val within a time budget; the best becomes a recipe.

``SEARCH`` names ``conf/search/<SEARCH>.yaml`` (:mod:`seqlm.tune.space`: the keys to draw, the keys
every trial gets, the sampler and the pruner). Every trial is a DVC experiment up to the train stage
(``dvc exp show`` lists them), judged by its best val perplexity alone; evaluations are reported to
the pruner as the trial trains (:mod:`seqlm.tune.study`). At the end the best trial is written as
``conf/recipe/tuned-<dataset>.yaml`` and the command that reproduces it is printed::

    seqlm tune lstm --dataset timemachine --minutes 60 --workers 2
    dvc exp run -S dataset=timemachine -S recipe=tuned-timemachine

The study is kept in ``tune/studies.db`` (SQLite) or ``--storage URL`` (any database Optuna takes,
e.g. ``postgresql://...``: run the same command on several machines to share one study). Rerun the
same command to continue a study; ``--trials`` counts the trials it has finished in all.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from seqlm.core.errors import ParamError, SeqlmError
from seqlm.core.logs import setup_logging
from seqlm.ops.presets import CONF_DIR, PARAMS_FILE, compose_params
from seqlm.params import read_params
from seqlm.tune.recipe import trial_rows, write_recipe
from seqlm.tune.space import SearchSpace, check_keys, check_space, extremes, read_space
from seqlm.tune.study import tune
from seqlm.tune.trials import DEFAULT_STORAGE, Tuning, hydra_value

log = logging.getLogger("seqlm.tune")
SEARCH_DIR = "search"


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` (values read as YAML: ``0.1``, ``true``, ``[1, 2]``)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParamError(f"--set {item!r}: write key=value, e.g. train.budget_minutes=2")
        out[key.strip()] = yaml.safe_load(value)
    return out


def search_path(name: str, conf_dir: Path) -> Path:
    """A search's file: ``conf/search/<name>.yaml``, or ``name`` itself when it is a path."""
    if name.endswith((".yaml", ".yml")):
        return Path(name)
    return conf_dir / SEARCH_DIR / f"{name}.yaml"


def composed(dataset: str, fixed: dict[str, Any], conf_dir: Path) -> dict[str, Any]:
    """The params a trial starts from: the dataset preset with every fixed value (Hydra refuses a
    key the config does not have)."""
    overrides = [f"dataset={dataset}", *(f"{k}={hydra_value(v)}" for k, v in fixed.items())]
    with tempfile.TemporaryDirectory() as tmp:
        return compose_params(overrides, Path(tmp) / PARAMS_FILE, conf_dir)


def default_workers() -> int:
    """Trials at once: one per two cores (each trial gets its share of the cores)."""
    return max(1, (os.cpu_count() or 1) // 2)


def prepare(args: argparse.Namespace, root: Path) -> Tuning:
    """Everything checked before any trial runs: the search, its keys and values, the budget."""
    conf_dir = root / CONF_DIR
    path = search_path(args.search, conf_dir).absolute()
    search = read_space(path)
    fixed = {**search.fixed, **parse_sets(args.set)}
    search = SearchSpace(search.space, fixed, search.sampler, search.seed, search.pruner)
    check_keys(search, str(path))  # before Hydra, whose refusal names less
    dataset = args.dataset or read_params(root / PARAMS_FILE).get("dataset")
    if not dataset:
        raise ParamError("no --dataset given and params.yaml names none")
    params = composed(dataset, fixed, conf_dir)
    check_space(search, params, str(path))
    trial_minutes = float(params["train"]["budget_minutes"])
    if "train.budget_minutes" in search.space:
        trial_minutes = float(max(extremes(search.space["train.budget_minutes"])))
    if not args.minutes > 0:
        raise ParamError(f"--minutes must be > 0, got {args.minutes}")
    if trial_minutes > args.minutes:
        raise ParamError(
            f"--minutes {args.minutes:g} cannot hold one trial: each trains for "
            f"train.budget_minutes = {trial_minutes:g} minutes before its last evaluation; give "
            f"--minutes >= {trial_minutes:g} or a smaller train.budget_minutes (--set)"
        )
    if trial_minutes == 0:
        log.warning(
            "train.budget_minutes is 0: each trial trains its epochs (or max_steps) to the end, so "
            "the study may run past --minutes by up to one trial; set a budget with --set"
        )
    check_cadence(params["train"], trial_minutes)
    if args.trials is not None and args.trials < 1:
        raise ParamError(f"--trials must be >= 1, got {args.trials}")
    workers = args.workers if args.workers is not None else default_workers()
    if workers < 1:
        raise ParamError(f"--workers must be >= 1, got {workers}")
    name = Path(args.search).stem
    return Tuning(
        root=root,
        search_name=name,
        search=search,
        dataset=dataset,
        study_name=args.study or f"{name}-{dataset}",
        storage=args.storage,
        minutes=args.minutes,
        trial_minutes=trial_minutes,
        trials=args.trials,
        workers=workers,
        search_file=str(path.relative_to(root)) if path.is_relative_to(root) else str(path),
        start={key: lookup(params, key) for key in search.space},
    )


def check_cadence(train: dict[str, Any], trial_minutes: float) -> None:
    """Warn when the trials' evaluations will not serve the pruner: by steps or epochs under a
    time budget (a slow trial reaches each late, near its budget's end) or too rare to prune
    anything."""
    every, minutes = int(train["eval_every"]), float(train["eval_minutes"])
    if trial_minutes and not minutes:
        log.warning(
            "the trials train for %g minutes but validate %s: the pruner compares them at equal "
            "%s, which a slow trial reaches late; --set train.eval_every=0 --set "
            "train.eval_minutes=M compares them at equal minutes",
            trial_minutes,
            f"every {every} steps" if every else "at every epoch's end",
            "steps" if every else "epochs",
        )
    if trial_minutes and minutes >= trial_minutes / 2:
        log.warning(
            "train.eval_minutes = %g gives a %g-minute trial at most %d evaluations: too few "
            "to prune it early",
            minutes,
            trial_minutes,
            int(trial_minutes // minutes),
        )


def lookup(params: dict[str, Any], key: str) -> Any:
    """``params``' value of ``model`` or ``section.key`` (None if it has none)."""
    section, _, name = key.partition(".")
    if not name:
        return params.get(section)
    return (params.get(section) or {}).get(name)


def build_parser(prog: str | None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        epilog='Search files: conf/search/*.yaml (README, "Tuning").',
    )
    ap.add_argument("search", help="conf/search/<SEARCH>.yaml (or a path to a .yaml)")
    ap.add_argument("--dataset", help="the dataset preset (default: params.yaml's)")
    ap.add_argument(
        "--minutes", type=float, default=60.0, help="the study's time budget (default: %(default)s)"
    )
    ap.add_argument(
        "--trials", type=int, help="finished trials the study should have (default: until time)"
    )
    ap.add_argument("--workers", type=int, help="trials at once (default: one per two cores)")
    ap.add_argument(
        "--storage", default=DEFAULT_STORAGE, help="Optuna storage URL (default: %(default)s)"
    )
    ap.add_argument("--study", help="the study's name (default: <search>-<dataset>)")
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="fix a param in every trial"
    )
    return ap


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    setup_logging()
    root = Path.cwd()
    try:
        tuning = prepare(args, root)
        study = tune(tuning)
    except SeqlmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the running trials were stopped; rerun the same command to continue")
        return 130
    print(f"\nstudy {tuning.study_name}: trial, state, val perplexity, params")
    for number, state, value, params in trial_rows(study):
        print(f"  {number:>3}  {state:<8} {value:<12} {params}")
    recipe = write_recipe(tuning, study, root / CONF_DIR)
    if recipe is None:
        print("no trial completed: no recipe written", file=sys.stderr)
        return 1
    print(f"\nwrote {recipe.relative_to(root)}; reproduce the best trial with:")
    print(f"  dvc exp run -S dataset={tuning.dataset} -S recipe={recipe.stem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
