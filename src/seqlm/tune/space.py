"""A search space for ``seqlm tune``: ``conf/search/<name>.yaml`` read, checked and sampled.

The file::

    sampler: tpe              # tpe (Optuna's TPE), random, or grid (every combination of choices)
    seed: 0                   # the sampler's seed
    startup: 10               # tpe: trials drawn at random before TPE models the finished ones
    pruner:                   # stops trials whose val figures are behind the others'
      name: median            # median, threshold or none
      startup_trials: 2       # median: trials finished before any is pruned
      warmup: 1               # evaluations of a trial before it can be pruned
      upper: null             # threshold: prune at a val perplexity above this
    fixed:                    # params every trial gets
      train.budget_minutes: 2
    space:                    # params each trial draws
      train.lr: {low: 0.001, high: 0.01, log: true}   # a float range (log scale)
      net.hidden_size: {low: 256, high: 768, step: 128}  # integers when low and high are
      net.dropout: [0.0, 0.1, 0.2]                   # a choice

Keys are ``params.yaml``'s (``section.key``, or ``model``). :func:`check_space` refuses, before any
trial runs, a key no section has and a value its schema refuses (each choice, each end of a range,
every fixed value), with the key, the value and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seqlm.core.errors import ParamError
from seqlm.params import SECTIONS, build, check_model

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "threshold", "none")
FILE_KEYS = ("sampler", "seed", "startup", "pruner", "fixed", "space")
TPE_STARTUP = 10  # Optuna's default n_startup_trials
PRUNER_KEYS = ("name", "startup_trials", "warmup", "upper")
RANGE_KEYS = ("low", "high", "log", "step")


@dataclass(frozen=True)
class Range:
    """A numeric range: integers when ``low`` and ``high`` are, floats otherwise."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def ends(self) -> tuple[Any, Any]:
        return self.low, self.high


@dataclass(frozen=True)
class PrunerSpec:
    name: str = "median"
    startup_trials: int = 2
    warmup: int = 1
    upper: float | None = None


@dataclass(frozen=True)
class SearchSpace:
    """A parsed search file: what each trial draws (``space``: :class:`Range` or a list of
    choices), what every trial gets (``fixed``), the sampler and the pruner."""

    space: dict[str, Range | list[Any]]
    fixed: dict[str, Any] = field(default_factory=dict)
    sampler: str = "tpe"
    seed: int = 0
    pruner: PrunerSpec = PrunerSpec()
    startup: int = TPE_STARTUP

    def suggest(self, trial: Any) -> dict[str, Any]:
        """The values an Optuna trial draws for every key of the space."""
        drawn: dict[str, Any] = {}
        for key, dim in self.space.items():
            if isinstance(dim, list):
                drawn[key] = trial.suggest_categorical(key, dim)
            elif dim.integer:
                step = int(dim.step) if dim.step else 1
                drawn[key] = trial.suggest_int(key, dim.low, dim.high, step=step, log=dim.log)
            else:
                drawn[key] = trial.suggest_float(
                    key, float(dim.low), float(dim.high), step=dim.step, log=dim.log
                )
        return drawn

    def starting_point(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The searched keys' ``values`` (the params a trial starts from) when every one lies in
        the space — a choice listed, a number within its range (an integer one for an integer
        range) — else {}: the point a study draws first."""
        point = {}
        for key, dim in self.space.items():
            value = values.get(key)
            if isinstance(dim, list):
                if value not in dim:
                    return {}
            elif isinstance(value, bool) or not isinstance(value, int | float):
                return {}
            elif not dim.low <= value <= dim.high or (dim.integer and not isinstance(value, int)):
                return {}
            elif dim.integer and dim.step and (value - dim.low) % dim.step:
                return {}  # between two steps of the range
            point[key] = value
        return point

    def grid(self) -> dict[str, list[Any]]:
        """Every key's choices, for the grid sampler (refused when a key is a range)."""
        ranges = [key for key, dim in self.space.items() if not isinstance(dim, list)]
        if ranges:
            raise ParamError(
                f"sampler 'grid' needs a list of choices for every key; {', '.join(ranges)} "
                f"{'is a range' if len(ranges) == 1 else 'are ranges'}: list the values to try"
            )
        return {key: list(dim) for key, dim in self.space.items() if isinstance(dim, list)}

    def size(self) -> int | None:
        """The number of distinct trials a grid holds (None when a key is a float range)."""
        total = 1
        for dim in self.space.values():
            if isinstance(dim, list):
                total *= len(dim)
            elif dim.integer:
                step = int(dim.step) if dim.step else 1
                total *= (int(dim.high) - int(dim.low)) // step + 1
            else:
                return None
        return total


def parse_range(key: str, spec: Mapping[str, Any], where: str) -> Range:
    unknown = sorted(set(spec) - set(RANGE_KEYS))
    if unknown or "low" not in spec or "high" not in spec:
        raise ParamError(
            f"{where}: space key {key!r} = {dict(spec)!r}: a range has keys low and high (and "
            f"optionally log, step){'; unknown: ' + ', '.join(unknown) if unknown else ''}"
        )
    low, high = spec["low"], spec["high"]
    for end in (low, high):
        if isinstance(end, bool) or not isinstance(end, int | float) or not math.isfinite(end):
            raise ParamError(
                f"{where}: space key {key!r}: low and high must be numbers, got {end!r}"
            )
    if not low < high:
        raise ParamError(f"{where}: space key {key!r}: low {low!r} must be below high {high!r}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ParamError(f"{where}: space key {key!r}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise ParamError(f"{where}: space key {key!r}: a log range needs low > 0, got {low!r}")
    step = spec.get("step")
    if step is not None and (
        isinstance(step, bool) or not isinstance(step, int | float) or step <= 0
    ):
        raise ParamError(
            f"{where}: space key {key!r}: step must be a positive number, got {step!r}"
        )
    if step is not None and log:
        raise ParamError(f"{where}: space key {key!r}: a range takes log or step, not both")
    return Range(low, high, log, step)


def refuse_unknown(given: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
    """Refuse keys of ``given`` not in ``allowed``: ``<what> a, b; allowed: ...``."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ParamError(f"{what} {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def extremes(dim: Range | list[Any]) -> list[Any]:
    """The values that bound a dimension: every choice, or both ends of a range."""
    return list(dim) if isinstance(dim, list) else list(dim.ends())


def whole(value: Any, least: int) -> bool:
    """Whether ``value`` is an integer (not a bool) ``>= least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def parse_pruner(value: Any, where: str) -> PrunerSpec:
    if value is None:
        return PrunerSpec()
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise ParamError(f"{where}: pruner must be a name or a mapping, got {value!r}")
    refuse_unknown(value, PRUNER_KEYS, f"{where}: unknown pruner key(s)")
    spec = PrunerSpec(**value)
    if spec.name not in PRUNERS:
        raise ParamError(f"{where}: pruner {spec.name!r} is not one of: {', '.join(PRUNERS)}")
    for name in ("startup_trials", "warmup"):
        count = getattr(spec, name)
        if not whole(count, 0):
            raise ParamError(f"{where}: pruner {name} must be an integer >= 0, got {count!r}")
    if spec.name == "threshold" and not isinstance(spec.upper, int | float):
        raise ParamError(
            f"{where}: pruner 'threshold' needs upper: the val perplexity to prune above"
        )
    return spec


def parse_startup(data: Mapping[str, Any], sampler: str, where: str) -> int:
    """``startup``: the trials the TPE sampler draws at random before it models the finished ones
    (Optuna's ``n_startup_trials``); only for ``tpe``."""
    if "startup" not in data:
        return TPE_STARTUP
    startup = data["startup"]
    if sampler != "tpe":
        raise ParamError(f"{where}: startup is the tpe sampler's; sampler {sampler!r} has none")
    if not whole(startup, 1):
        raise ParamError(f"{where}: startup must be an integer >= 1, got {startup!r}")
    return startup


def parse_space(data: Any, where: str) -> SearchSpace:
    """A search file's mapping into a :class:`SearchSpace` (the file's own shape checked; the keys'
    values against params' schemas by :func:`check_space`)."""
    if not isinstance(data, Mapping):
        raise ParamError(f"{where}: a search file holds a mapping, got {type(data).__name__}")
    refuse_unknown(data, FILE_KEYS, f"{where}: unknown key(s)")
    raw_space = data.get("space") or {}
    if not isinstance(raw_space, Mapping) or not raw_space:
        raise ParamError(f"{where}: 'space' must map at least one params key to a range or a list")
    space: dict[str, Range | list[Any]] = {}
    for key, spec in raw_space.items():
        if isinstance(spec, list):
            if not spec:
                raise ParamError(f"{where}: space key {key!r} has an empty list of choices")
            space[str(key)] = list(spec)
        elif isinstance(spec, Mapping):
            space[str(key)] = parse_range(str(key), spec, where)
        else:
            raise ParamError(
                f"{where}: space key {key!r} = {spec!r}: give a list of choices or a range "
                "{low: ..., high: ...}"
            )
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, Mapping):
        raise ParamError(f"{where}: 'fixed' must map params keys to values, got {fixed!r}")
    both = sorted(set(fixed) & set(space))
    if both:
        raise ParamError(f"{where}: {', '.join(both)} both fixed and searched: keep one")
    sampler = data.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise ParamError(f"{where}: sampler {sampler!r} is not one of: {', '.join(SAMPLERS)}")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ParamError(f"{where}: seed must be an integer, got {seed!r}")
    result = SearchSpace(
        space,
        {str(k): v for k, v in fixed.items()},
        sampler,
        seed,
        parse_pruner(data.get("pruner"), where),
        parse_startup(data, sampler, where),
    )
    if sampler == "grid":
        try:
            result.grid()
        except ParamError as e:
            raise ParamError(f"{where}: {e}") from None
    return result


def read_space(path: str | Path) -> SearchSpace:
    """Read and parse a search file (``conf/search/<name>.yaml``)."""
    p = Path(path)
    if not p.is_file():
        known = sorted(q.stem for q in p.parent.glob("*.yaml")) if p.parent.is_dir() else []
        raise ParamError(
            f"no search file {str(p)!r}"
            + (f" (search files there: {', '.join(known)})" if known else "")
        )
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ParamError(f"{p}: not valid YAML: {e}") from None
    return parse_space(data, str(p))


def check_key(key: str, where: str) -> None:
    """Refuse a key ``params.yaml`` does not have (``model`` or ``<section>.<key>``)."""
    if key == "model":
        return
    section, _, name = key.partition(".")
    if section not in SECTIONS or not name or "." in name:
        raise ParamError(
            f"{where}: unknown params key {key!r}: keys are 'model' or '<section>.<key>' with a "
            f"section among {', '.join(SECTIONS)}"
        )
    fields = SECTIONS[section].model_fields
    if name not in fields:
        raise ParamError(
            f"{where}: unknown params key {key!r}; section {section!r} has: {', '.join(fields)}"
        )


def check_keys(search: SearchSpace, where: str) -> None:
    """Every fixed and searched key is one ``params.yaml`` has."""
    for key in [*search.fixed, *search.space]:
        check_key(key, where)


def check_value(params: Mapping[str, Any], key: str, value: Any, where: str) -> None:
    """Refuse ``key = value`` if ``params.yaml``'s schema would: an unknown key or a refused value
    (checked with the rest of ``params``, the composed params a trial starts from)."""
    check_key(key, where)
    if key == "model":
        try:
            check_model(value)
        except ParamError as e:
            raise ParamError(f"{where}: model = {value!r}: {e}") from None
        return
    section, _, name = key.partition(".")
    values = {**(params.get(section) or {}), name: value}
    try:
        build(SECTIONS[section], section, values)
    except ParamError as e:
        raise ParamError(f"{where}: {key} = {value!r} is refused: {e}") from None


def check_space(search: SearchSpace, params: Mapping[str, Any], where: str) -> None:
    """The params every trial starts from (the fixed values in them), then every choice and both
    ends of every range, checked against the schema."""
    check_keys(search, where)
    if "model" in params:
        try:
            check_model(params["model"])
        except ParamError as e:
            raise ParamError(f"{where}: {e}") from None
    for section, cls in SECTIONS.items():
        if section in params:
            try:
                build(cls, section, params[section] or {})
            except ParamError as e:
                raise ParamError(f"{where}: the params every trial starts from: {e}") from None
    for key, dim in search.space.items():
        for value in extremes(dim):
            check_value(params, key, value, where)
