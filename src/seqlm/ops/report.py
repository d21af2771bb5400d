"""A Markdown leaderboard of experiments, from ``dvc exp show --json``.

One row per committed baseline and per experiment: the model, the params that differ between the rows
(so the table shows what each experiment changed), val and test perplexity and bits per character
(see :mod:`seqlm.perplexity`), the interpolation with the n-gram, train minutes and the ratio of the
test perplexity to the n-gram's. Rows are ranked by **val** perplexity — the split models are chosen
on — with test beside it.

Run it as ``python -m seqlm.ops.report [--out reports/leaderboard.md] [--plots reports/plots]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqlm.core.atomic import write_text
from seqlm.core.errors import SeqlmError

EVAL = "metrics/eval.json"
TRAIN = "metrics/train.json"
NGRAM = "metrics/ngram.json"
PARAMS = "params.yaml"
# params never shown as "key params": they do not change what a model learns
QUIET_PARAMS = ("download.", "generate.", "train.device")


@dataclass(frozen=True)
class Entry:
    """One experiment (or committed baseline) as the leaderboard sees it."""

    name: str
    rev: str
    params: Mapping[str, Any]
    metrics: Mapping[str, Any]
    baseline: bool = False
    key_params: dict[str, Any] = field(default_factory=dict)

    def metric(self, file: str, key: str) -> Any:
        node: Any = self.metrics.get(file)
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
        return node


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists stay values."""
    out: dict[str, Any] = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _entry(record: Mapping[str, Any], name: str, baseline: bool) -> Entry:
    data = record.get("data") or {}
    params = flatten(((data.get("params") or {}).get(PARAMS) or {}).get("data") or {})
    metrics = {f: (m or {}).get("data") or {} for f, m in (data.get("metrics") or {}).items()}
    return Entry(name=name, rev=str(record.get("rev", ""))[:7], params=params, metrics=metrics, baseline=baseline)


def entries_from_exp_show(exp_show: Sequence[Mapping[str, Any]]) -> list[Entry]:
    """The newest committed baseline and every experiment in ``dvc exp show --json [-A]`` output.

    The workspace is left out (it is either the baseline or work in progress), and so are older
    commits themselves, though not their experiments: ``-A`` keeps experiments queued on an earlier
    commit in the table.
    """
    entries: list[Entry] = []
    first = True
    for top in exp_show:
        if top.get("rev") == "workspace" or top.get("error"):
            continue
        if first:
            entries.append(_entry(top, top.get("name") or str(top.get("rev"))[:7], baseline=True))
            first = False
        for exp in top.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state", "success")
            if state != "success":  # queued, running or failed: no figures of its own yet
                continue
            revs = exp.get("revs") or []
            if not revs or revs[0].get("error"):
                continue
            entries.append(_entry(revs[0], exp.get("name") or revs[0].get("name") or "?", baseline=False))
    return _with_key_params(entries)


def _with_key_params(entries: list[Entry]) -> list[Entry]:
    """Attach to each entry the params whose values differ between entries (``model`` always)."""
    keys = sorted({k for e in entries for k in e.params})
    varying = [
        k for k in keys
        if not k.startswith(QUIET_PARAMS) and len({json.dumps(e.params.get(k)) for e in entries}) > 1
    ]
    return [
        Entry(e.name, e.rev, e.params, e.metrics, e.baseline,
              {k: e.params.get(k) for k in ["model", *[v for v in varying if v != "model"]]})
        for e in entries
    ]


def rank(entries: Sequence[Entry]) -> list[Entry]:
    """By val perplexity (lower first); entries without one last, then by name."""
    def key(e: Entry) -> tuple[float, str]:
        v = e.metric(EVAL, "val.perplexity")
        return (v if isinstance(v, (int, float)) else math.inf, e.name)

    return sorted(entries, key=key)


def _num(x: Any, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "—"


def _param(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def leaderboard_markdown(entries: Sequence[Entry], plots_link: str | None = None) -> str:
    """The leaderboard as a Markdown document."""
    ranked = rank(entries)
    lines = [
        "# seqlm leaderboard",
        "",
        "Ranked by val perplexity (models are chosen on val; test is held out). Perplexity is per "
        "token; bits per character compares word- and character-level models. *vs n-gram* is the "
        "test perplexity divided by the n-gram baseline's (below 1: better than the n-gram). "
        "*interp.* is the neural model interpolated with the n-gram, the weight chosen on val.",
        "",
        "| # | experiment | model | key params | val ppl | test ppl | val bpc | test bpc | interp. test ppl "
        "| n-gram test ppl | vs n-gram | train min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, e in enumerate(ranked, start=1):
        test = e.metric(EVAL, "test.perplexity")
        ngram = e.metric(NGRAM, "test.perplexity")
        ratio = test / ngram if isinstance(test, (int, float)) and isinstance(ngram, (int, float)) else None
        seconds = e.metric(TRAIN, "train_seconds")
        params = ", ".join(f"{k}={_param(v)}" for k, v in e.key_params.items() if k != "model") or "—"
        name = f"{e.name} (baseline {e.rev})" if e.baseline else f"{e.name} ({e.rev})"
        lines.append(
            f"| {i} | {name} | {e.params.get('model', '—')} | {params} "
            f"| {_num(e.metric(EVAL, 'val.perplexity'))} | {_num(test)} "
            f"| {_num(e.metric(EVAL, 'val.bits_per_char'))} | {_num(e.metric(EVAL, 'test.bits_per_char'))} "
            f"| {_num(e.metric(EVAL, 'interpolation.test.perplexity'))} | {_num(ngram)} | {_num(ratio)} "
            f"| {_num(seconds / 60 if isinstance(seconds, (int, float)) else None, 1)} |"
        )
    if plots_link:
        lines += ["", f"Plots (learning curves, Zipf, n-gram orders, bits per character): [{plots_link}]({plots_link})"]
    return "\n".join(lines) + "\n"


def exp_show_json(root: Path) -> list[dict[str, Any]]:
    """Run ``dvc exp show --json --all-commits`` in ``root`` (newest commit first)."""
    proc = subprocess.run(["dvc", "exp", "show", "--json", "--all-commits"], cwd=root,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SeqlmError(f"`dvc exp show --json --all-commits` failed:\n{proc.stderr.strip()}")
    return json.loads(proc.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seqlm.ops.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="reports/leaderboard.md", help="Markdown file to write (default: %(default)s)")
    ap.add_argument("--plots", default="reports/plots",
                    help="folder for the plots of the ranked experiments (default: %(default)s); '' skips them")
    ap.add_argument("--input", help="read this saved `dvc exp show --json` output instead of running dvc")
    args = ap.parse_args(argv)
    root = Path.cwd()
    try:
        data = json.loads(Path(args.input).read_text()) if args.input else exp_show_json(root)
        entries = entries_from_exp_show(data)
        if not entries:
            raise SeqlmError("no committed baseline or experiment to report; run `dvc exp run` first")
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
