"""Trainings side by side on one machine: do they share the cores or fight over them?

Run by hand (not a test). Starts ``N`` trainings of The Time Machine's default LSTM at once (``N``
in ``--runs``, default 1, 2 and 4), each a separate process with no thread setting of its own (no
``train.threads``, ``SEQLM_THREADS`` or ``OMP_NUM_THREADS``: what a user's terminals, ``dvc queue
start -j N`` or a tuner start), each for ``--steps`` optimizer steps validated once at the end.
Every process prepares its data, then waits until all are ready, so the trainings overlap from their
first step. Printed per ``N``: each run's training tokens/s (the loop's own figure, validation
excluded), their sum, and the sum as a share of one training alone. The rows are measured twice:
with seqlm's core sharing (the default: each training takes ``max(1, cores // runs)`` threads and
follows the count as runs start and end, :mod:`seqlm.core.threads`) and with it turned off
(``SEQLM_SHARE_CORES=0``: torch's default of one thread per core in every process, what seqlm did
before).

Targets (issue #22): two at once together ≥ 90 % of one alone, four at once ≥ 85 %.

Usage (from the repository root)::

    python benchmarks/bench_parallel.py                  # 1, 2 and 4 at once, 300 steps each
    python benchmarks/bench_parallel.py --runs 1 2 --steps 100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ptb  # noqa: E402  (a sibling benchmark, not a package: conf/ composition, the data)

UNSET = ("SEQLM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "SEQLM_SHARE_CORES")


def worker(steps: int, go: Path, out: Path) -> int:
    """One training: the default LSTM on The Time Machine for ``steps`` steps, started when ``go``
    exists; its tokens/s written to ``out``."""
    os.environ.setdefault("SEQLM_NO_PROGRESS", "1")
    from seqlm.neural.loop import train
    from seqlm.params import NetParams, TrainParams, build

    params = bench_ptb.composed("timemachine")
    data = bench_ptb.preset_data("timemachine", params)
    net = build(NetParams, "net", params["net"])
    train_params = build(TrainParams, "train", params["train"]).replace(
        max_steps=steps, eval_every=steps
    )
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.01)
    with tempfile.TemporaryDirectory() as tmp:
        result = train(
            params["model"],
            net,
            train_params,
            data.vocab,
            data.splits["train"],
            data.splits["val"],
            checkpoint_path=Path(tmp) / "model.pt",
        )
    out.write_text(json.dumps({"tokens_per_second": result.tokens_per_second}))
    return 0


def side_by_side(n: int, steps: int, share: bool) -> list[float]:
    """Start ``n`` workers at once; their training tokens/s."""
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    if not share:
        env["SEQLM_SHARE_CORES"] = "0"
    with tempfile.TemporaryDirectory() as tmp:
        go = Path(tmp) / "go"
        env["SEQLM_CORES_DIR"] = str(Path(tmp) / "cores")  # only these runs count each other
        outs = [Path(tmp) / f"{i}.json" for i in range(n)]
        procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", str(steps), str(go), str(out)],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for out in outs
        ]
        for p in procs:  # every worker has its data and waits
            assert p.stdout is not None
            if p.stdout.readline().strip() != "ready":
                raise SystemExit("a worker failed before training")
        go.touch()
        for p in procs:
            if p.wait() != 0:
                raise SystemExit("a worker failed")
        return [json.loads(out.read_text())["tokens_per_second"] for out in outs]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs="+", type=int, default=[1, 2, 4], help="trainings at once")
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps per training")
    ap.add_argument(
        "--modes", nargs="+", choices=("shared", "unshared"), default=["shared", "unshared"]
    )
    ap.add_argument("--worker", nargs=3, metavar=("STEPS", "GO", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is None and (args.steps < 1 or min(args.runs) < 1):
        ap.error("--steps and every --runs must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        steps, go, out = args.worker
        return worker(int(steps), Path(go), Path(out))
    import torch

    runs = sorted(set(args.runs) | {1})
    print(
        f"The Time Machine's default LSTM, {args.steps} steps a training, torch's default "
        f"{torch.get_num_threads()} threads on {os.cpu_count()} logical CPUs",
        flush=True,
    )
    rows = []
    for mode in args.modes:
        alone = None
        for n in runs:
            speeds = side_by_side(n, args.steps, mode == "shared")
            total = sum(speeds)
            alone = total if n == 1 else alone
            assert alone is not None
            target = {2: " (target >= 90 %)", 4: " (target >= 85 %)"}.get(n, "")
            rows.append(
                [
                    mode if mode == "shared" else "unshared (SEQLM_SHARE_CORES=0)",
                    str(n),
                    " + ".join(f"{s:,.0f}" for s in speeds),
                    f"{total:,.0f}",
                    f"{100 * total / alone:.1f} %{target}",
                ]
            )
            print(f"  {mode}, {n} at once: {rows[-1][2]} tokens/s = {rows[-1][4]}", flush=True)
    head = ["cores", "trainings at once", "tokens/s each", "together", "of one alone"]
    print()
    print(bench_ptb.markdown_table(head, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
