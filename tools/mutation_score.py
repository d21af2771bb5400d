"""Mutation testing of the honesty-critical code (``make mutate``): run mutmut, print the score.

mutmut (configured in ``pyproject.toml``'s ``[tool.mutmut]``) mutates the files it is told to; this
script picks, within them, the functions in :data:`SCOPE` (the split, the vocabulary, the scoring
convention and the mixture, the n-gram order search and Kneser-Ney estimation, neural target
scoring, checkpoint refusal), runs mutmut on those mutants from a fresh ``mutants/`` folder, and
prints per module how many mutants the tests killed, how many survived, and the mutation score

    score = (killed + timed out) / (all mutants − equivalent ones)

where the equivalent mutants (they cannot change behaviour) are those listed, with a reason each,
in ``mutation/equivalent.txt``. Then it lists every surviving mutant with its diff.

    python tools/mutation_score.py            # the whole run (minutes), then the report
    python tools/mutation_score.py --report   # the report of the last run only

Run from the repository root in the project's environment.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "mutation" / "equivalent.txt"
MUTANTS = ROOT / "mutants"

# module -> the mutants in scope (mutmut's names: module.x_function__mutmut_N, or
# module.xǁClassǁmethod__mutmut_N for a method); a module listed whole is in scope whole
SCOPE: dict[str, tuple[str, ...]] = {
    "seqlm.data.split": ("*",),
    "seqlm.data.vocab": ("*",),
    "seqlm.perplexity": ("*",),
    "seqlm.mixture": ("*",),
    "seqlm.ngram.baseline": ("x_search_order__mutmut_*",),
    "seqlm.ngram.kneser_ney": ("*",),
    "seqlm.neural.evaluation": ("*",),
    "seqlm.neural.models.heads": (
        "x_gather_logprobs__mutmut_*",
        "x_linear_target_logprobs__mutmut_*",
        "x_adaptive_target_logprobs__mutmut_*",
        "x_head_target_logprobs__mutmut_*",
    ),
    "seqlm.neural.models.base": ("x_streamed_logprobs__mutmut_*",),
    "seqlm.neural.checkpoint": ("*",),
}


def patterns() -> list[str]:
    """mutmut's name patterns for the mutants in scope."""
    return [f"{module}.{p}" for module, pats in SCOPE.items() for p in pats]


def module_of(name: str) -> str | None:
    """The module in :data:`SCOPE` a mutant belongs to, or None when it is out of scope."""
    for module, pats in SCOPE.items():
        if any(fnmatch.fnmatchcase(name, f"{module}.{p}") for p in pats):
            return module
    return None


def read_results() -> dict[str, str]:
    """Every mutant in scope -> its outcome, from the ``.meta`` files mutmut leaves in mutants/."""
    from mutmut.stats import status_by_exit_code  # 1 killed, 0 survived, 36 timeout, ...

    results = {}
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if module_of(name):
                results[name] = status_by_exit_code[code]
    return results


def read_equivalent(path: Path = EQUIVALENT) -> dict[str, str]:
    """``mutant id -> reason`` from the equivalent-mutants file (``#`` starts a comment line)."""
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, reason = line.strip().partition(" ")
        if not reason.strip():
            sys.exit(f"{path}:{n}: a mutant id needs a reason after it")
        out[name] = reason.strip()
    return out


def diff_of(name: str) -> str:
    """The mutated lines of a mutant (mutmut's ``show``), indented."""
    try:
        from mutmut.mutation.diff_apply import get_diff_for_mutant

        cwd = os.getcwd()
        os.chdir(ROOT)
        try:
            diff = get_diff_for_mutant(name)
        finally:
            os.chdir(cwd)
    except Exception as e:  # the report must not fail on a display detail
        return f"      (no diff: {e}; try `mutmut show {name}`)"
    lines = [ln for ln in diff.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
    return "\n".join(f"      {ln}" for ln in lines)


def natural(name: str) -> tuple[str, int]:
    """Sort key of a mutant: its function, then its number (2 before 10)."""
    function, _, number = name.rpartition("__mutmut_")
    return function, int(number)


def score_of(c: Counter) -> float:
    """(killed + timed out) / (all − equivalent) of one row's outcomes."""
    scored = sum(c.values()) - c["equivalent"]
    return (c["killed"] + c["timeout"]) / scored if scored else 1.0


def report(results: dict[str, str], equivalent: dict[str, str]) -> float:
    """Print the score per module and overall, then the survivors; return the overall score."""
    rows = {module: Counter() for module in SCOPE}
    for name, outcome in results.items():
        rows[module_of(name)]["equivalent" if name in equivalent else outcome] += 1
    cols = ("killed", "timeout", "survived", "no tests", "equivalent", "total", "score")
    print(f"\n{'module':<28}" + "".join(f"{c:>11}" for c in cols))
    total = sum(rows.values(), Counter())
    for module, c in [*rows.items(), ("all", total)]:
        n = sum(c.values())
        cells = [c[k] for k in cols[:5]] + [n, f"{100 * score_of(c):.1f}%"]
        print(f"{module:<28}" + "".join(f"{v:>11}" for v in cells))
    unexpected = sorted(set(total) - set(cols))
    if unexpected:
        print(f"\nnot killed either: {', '.join(f'{total[o]} {o}' for o in unexpected)}")
    stale = sorted(set(equivalent) - set(results))
    if stale:
        print(f"\n{EQUIVALENT.relative_to(ROOT)} lists mutants that no longer exist: {stale}")
    killed = sorted(n for n in equivalent if results.get(n) in ("killed", "timeout"))
    if killed:
        print(f"\nlisted as equivalent but killed (not equivalent, remove them): {killed}")
    survivors = sorted(
        (n for n, o in results.items() if o not in ("killed", "timeout") and n not in equivalent),
        key=natural,
    )
    print(f"\n{len(survivors)} surviving mutants (mutmut show NAME for the whole function):")
    for name in survivors:
        print(f"  {name}  [{results[name]}]\n{diff_of(name)}")
    return score_of(total)


def run_mutmut() -> float:
    """A fresh mutmut run on the mutants in scope; returns its wall time in seconds.

    mutmut's own summary (every mutant named) is kept in mutants/mutmut-run.log, not printed."""
    shutil.rmtree(MUTANTS, ignore_errors=True)
    MUTANTS.mkdir()
    mutmut = Path(sys.executable).with_name("mutmut")
    # one torch thread per mutmut worker: the workers already use every core
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SEQLM_NO_PROGRESS": "1", "PYTHONHASHSEED": "0"}
    t0 = time.monotonic()
    with open(MUTANTS / "mutmut-run.log", "wb") as log:
        proc = subprocess.Popen(
            [str(mutmut), "run", *patterns()], cwd=ROOT, env=env, stdout=subprocess.PIPE
        )
        echo = True
        while chunk := proc.stdout.read1(4096):
            log.write(chunk)
            if echo:
                head, marker, _ = chunk.partition(b"Mutant results")
                sys.stdout.buffer.write(head)
                sys.stdout.flush()
                echo = not marker
    if proc.wait() != 0:
        sys.exit(f"mutmut failed (exit {proc.returncode}); see mutants/mutmut-run.log")
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--report", action="store_true", help="only report the last run")
    parser.add_argument(
        "--min-score", type=float, default=0.0, help="exit 1 below this score (0..100)"
    )
    args = parser.parse_args(argv)
    seconds = None if args.report else run_mutmut()
    results = read_results()
    if not results:
        sys.exit("no mutmut results in mutants/: run `make mutate`")
    score = report(results, read_equivalent())
    print(f"\nmutation score {100 * score:.1f}% (equivalent mutants excluded)", end="")
    print(f"; mutmut ran {seconds / 60:.1f} min" if seconds is not None else "")
    return 1 if 100 * score < args.min_score else 0


if __name__ == "__main__":
    sys.exit(main())
