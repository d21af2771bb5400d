"""A Markdown leaderboard of experiments, from ``dvc.api.exp_show()``.

One row per committed baseline and per experiment: the model, the params that differ between the rows
(so the table shows what each experiment changed), val and test perplexity and bits per character
(see :mod:`seqlm.perplexity`), the interpolation with the n-gram, dynamic evaluation, the
ensemble fitted by EM (the best mixture), train minutes and the ratio of the
test perplexity to the n-gram's. Rows are ranked by **val** perplexity — the split models are chosen
on — with test beside it.

``dvc.api.exp_show()`` gives one flat row per baseline and experiment: a column per metric (named
``file:key`` where two files share a key, ``key`` alone otherwise), per param and per dependency.
The params are told apart from the rest by ``dvc.api.params_show()``'s keys.

Run it as ``python -m seqlm.ops.report [--out reports/leaderboard.md] [--plots reports/plots]``
(or ``seqlm report``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from seqlm.core.atomic import write_text
from seqlm.core.errors import SeqlmError

EVAL = "metrics/eval.json"
TRAIN = "metrics/train.json"
NGRAM = "metrics/ngram.json"
PARAMS = "params.yaml"
# params never shown as "key params": they do not change what a model learns
QUIET_PARAMS = ("download.", "generate.", "train.device")
# an experiment row in these states has figures of its own (None: run outside the queue)
FINISHED = (None, "Success")
COLUMNS = [
    "#",
    "experiment",
    "model",
    "key params",
    "val ppl",
    "test ppl",
    "val bpc",
    "test bpc",
    "test bpb",
    "interp. test ppl",
    "dyn. test ppl",
    "ens. test ppl",
    "n-gram test ppl",
    "vs n-gram",
    "train min",
]


@dataclass(frozen=True)
class Entry:
    """One experiment (or committed baseline) as the leaderboard sees it.

    ``params`` maps each dotted params.yaml key to its value; ``metrics`` holds the row's other
    columns as ``dvc.api.exp_show()`` names them.
    """

    name: str
    rev: str
    params: Mapping[str, Any]
    metrics: Mapping[str, Any]
    baseline: bool = False
    key_params: dict[str, Any] = field(default_factory=dict)

    def metric(self, file: str, key: str) -> Any:
        """The value of ``key`` in metrics ``file`` (None when the row has none)."""
        value = self.metrics.get(f"{file}:{key}", self.metrics.get(key))
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _entry(
    row: Mapping[str, Any], param_keys: Sequence[str], name: str, rev: str, baseline: bool
) -> Entry:
    params = {k: row.get(k, row.get(f"{PARAMS}:{k}")) for k in param_keys}
    skip = set(param_keys) | {f"{PARAMS}:{k}" for k in param_keys}
    metrics = {k: v for k, v in row.items() if k not in skip}
    return Entry(name=name, rev=rev, params=params, metrics=metrics, baseline=baseline)


def entries_from_exp_show(
    rows: Sequence[Mapping[str, Any]],
    param_keys: Sequence[str],
    shas: Mapping[str, str] | None = None,
) -> list[Entry]:
    """The newest committed baseline and every finished experiment in ``dvc.api.exp_show()`` rows.

    ``param_keys`` are the dotted params.yaml keys; ``shas`` gives the short commit of a baseline
    that ``exp_show`` names by its branch. The workspace is left out (it is either the baseline or
    work in progress), and so are older commits themselves, though not their experiments.
    Experiments that are queued, running or failed have no figures of their own and are left out.
    """
    entries: list[Entry] = []
    for row in rows:
        rev = str(row.get("rev") or "")
        if row.get("typ") == "baseline":
            if rev != "workspace" and not any(e.baseline for e in entries):
                short = (shas or {}).get(rev, rev)[:7]
                entries.append(_entry(row, param_keys, rev, short, baseline=True))
        elif row.get("State") in FINISHED:
            entries.append(_entry(row, param_keys, row.get("Experiment") or rev, rev, False))
    return _with_key_params(entries)


def _with_key_params(entries: list[Entry]) -> list[Entry]:
    """Attach to each entry the params whose values differ between entries (``model`` always)."""
    frame = pd.DataFrame([e.params for e in entries])
    varying = [
        k
        for k in sorted(frame.columns)
        if not k.startswith(QUIET_PARAMS) and k != "model" and frame[k].map(repr).nunique() > 1
    ]
    return [
        replace(e, key_params={k: e.params.get(k) for k in ["model", *varying]}) for e in entries
    ]


def rank(entries: Sequence[Entry]) -> list[Entry]:
    """By val perplexity (lower first); entries without one last, then by name."""

    def key(e: Entry) -> tuple[float, str]:
        v = e.metric(EVAL, "val.perplexity")
        return (v if isinstance(v, (int, float)) else math.inf, e.name)

    return sorted(entries, key=key)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and not math.isnan(x)


def _num(x: Any, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if _is_number(x) else "—"


def _param(v: Any) -> str:
    """A param as written in params.yaml: exp_show reads every number as a float (256 → 256.0)."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def _row(i: int, e: Entry) -> list[str]:
    test, ngram = e.metric(EVAL, "test.perplexity"), e.metric(NGRAM, "test.perplexity")
    seconds = e.metric(TRAIN, "train_seconds")
    params = ", ".join(f"{k}={_param(v)}" for k, v in e.key_params.items() if k != "model")
    return [
        str(i),
        f"{e.name} (baseline {e.rev})" if e.baseline else f"{e.name} ({e.rev})",
        _param(e.params.get("model", "—")),
        params or "—",
        _num(e.metric(EVAL, "val.perplexity")),
        _num(test),
        _num(e.metric(EVAL, "val.bits_per_char")),
        _num(e.metric(EVAL, "test.bits_per_char")),
        _num(e.metric(EVAL, "test.bits_per_byte")),
        _num(e.metric(EVAL, "interpolation.test.perplexity")),
        _num(e.metric(EVAL, "dynamic.test.perplexity")),
        _num(e.metric(EVAL, "ensemble.test.perplexity")),
        _num(ngram),
        _num(test / ngram if _is_number(test) and _is_number(ngram) else None),
        _num(seconds / 60 if _is_number(seconds) else None, 1),
    ]


def leaderboard_frame(entries: Sequence[Entry]) -> pd.DataFrame:
    """The leaderboard as a table of formatted cells, best val perplexity first."""
    return pd.DataFrame([_row(i, e) for i, e in enumerate(rank(entries), start=1)], columns=COLUMNS)


def leaderboard_markdown(entries: Sequence[Entry], plots_link: str | None = None) -> str:
    """The leaderboard as a Markdown document."""
    table = leaderboard_frame(entries).to_markdown(
        index=False, stralign=None, numalign=None, disable_numparse=True
    )
    lines = [
        "# seqlm leaderboard",
        "",
        "Ranked by val perplexity (models are chosen on val; test is held out). Perplexity is per "
        "token; bits per character compares word- and character-level models. *vs n-gram* is the "
        "test perplexity divided by the n-gram baseline's (below 1: better than the n-gram). "
        "*interp.* is the neural model interpolated with the n-gram, the weight chosen on val; "
        "*dyn.* the neural model evaluated dynamically (learning rate and decay chosen on val); "
        "*ens.* the best mixture, of every member (n-gram, neural, dynamic, extra checkpoints) "
        "with weights fitted on val by EM.",
        "",
        table,
    ]
    if plots_link:
        lines += [
            "",
            "Plots (learning curves, Zipf, n-gram orders, bits per character): "
            f"[{plots_link}]({plots_link})",
        ]
    return "\n".join(lines) + "\n"


def load_entries(root: Path) -> list[Entry]:
    """Every baseline and experiment of the DVC repository ``root`` (all first-parent commits)."""
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        rows = dvc.api.exp_show(repo=str(root), num=-1)
        param_keys = list(pd.json_normalize(dvc.api.params_show(repo=str(root))).columns)
    except DvcException as e:
        raise SeqlmError(f"reading the experiments of {root} with dvc failed: {e}") from e
    newest = next(
        (str(r["rev"]) for r in rows if r.get("typ") == "baseline" and r.get("rev") != "workspace"),
        None,
    )  # the only baseline the leaderboard shows
    shas = {newest: _short_sha(root, newest)} if newest is not None else {}
    return entries_from_exp_show(rows, param_keys, shas)


def _short_sha(root: Path, rev: str) -> str:
    """The 7-digit commit ``rev`` (a branch or a short sha) names; ``rev`` if git cannot tell."""
    proc = subprocess.run(
        ["git", "rev-parse", "--short=7", f"{rev}^{{commit}}"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() if proc.returncode == 0 else rev


def build_parser(prog: str = "python -m seqlm.ops.report") -> argparse.ArgumentParser:
    """The ``python -m seqlm.ops.report`` (``seqlm report``) arguments."""
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out",
        default="reports/leaderboard.md",
        help="Markdown file to write (default: %(default)s)",
    )
    ap.add_argument(
        "--plots",
        default="reports/plots",
        help="folder for the plots of the ranked experiments (default: %(default)s); '' skips them",
    )
    return ap


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Write the leaderboard (and its plots page); exit 1 when there is nothing to report."""
    args = build_parser(prog or "python -m seqlm.ops.report").parse_args(argv)
    root = Path.cwd()
    try:
        entries = load_entries(root)
        if not entries:
            raise SeqlmError(
                "no committed baseline or experiment to report; run `dvc exp run` first"
            )
        link = None
        if args.plots:
            from seqlm.ops.plots import render_plots

            revs = [e.name if not e.baseline else e.rev for e in rank(entries)]
            Path(args.plots).mkdir(parents=True, exist_ok=True)
            index = render_plots(root, Path(args.plots), revisions=revs)
            link = os.path.relpath(Path(index).resolve(), Path(args.out).resolve().parent)
        write_text(args.out, leaderboard_markdown(entries, link))
    except SeqlmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({len(entries)} entries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
