"""Use a trained model: ``seqlm score``'s start-up and speed against the evaluate stage's scoring,
and generation speed for every model of a run.

Run by hand (figures printed; the README quotes them with the command)::

    python benchmarks/bench_use.py score --data-dir ../shared/data     # PTB test, PTB recipe LSTM
    python benchmarks/bench_use.py generate --run .                   # after dvc repro
    python benchmarks/bench_use.py capacity --run .

``score``: the PTB preset's data (``conf/dataset/ptb.yaml``, built with seqlm's data functions) and
its recipe's model (the ``net`` of the composed params: a 1 × 400 LSTM with an adaptive softmax),
saved as the train stage saves it; its weights are untrained, which changes no timing. It times
the evaluate stage's call (:func:`seqlm.neural.evaluation.score` on the test split, in this
process) and then ``seqlm score --total`` on ``ptb.test.txt`` as a user runs it (a fresh process:
wall time from start to exit, and the scoring time it reports), and checks both give the same nll.
Targets: start-up + score <= 10 s; the CLI's scoring within 1.2x of the stage's tokens/s.

``capacity``: the run's neural model scoring rows of 1,000 tokens in one forward pass at batch 1
and at batch 32 (tokens/s): the ceiling of a server scoring one request at a time against one that
batched the requests in flight.

``generate``: each model of the run (``data/model``, ``data/ngram``, ``data/ensemble.json``):
tokens/s sampling 300 tokens, and beam search at beam 5 for 50 tokens.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def bench_score(data_dir: Path, threads: int) -> None:
    import torch
    from bench_ptb import composed, ptb_data

    from seqlm.neural.checkpoint import add_text_reading, save_checkpoint
    from seqlm.neural.evaluation import score
    from seqlm.neural.models import build_model
    from seqlm.params import NetParams, build

    torch.set_num_threads(threads)
    params = composed("ptb")
    data = ptb_data(data_dir)
    net = build(NetParams, "net", params["net"])
    bos = data.vocab.id_of("<bos>")
    torch.manual_seed(0)
    model = build_model(params["model"], net, len(data.vocab), bos).eval()
    test = data.splits["test"]
    start = time.perf_counter()
    stage, _ = score(model, test, bos)
    stage_seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "model.pt"
        save_checkpoint(
            ckpt,
            model,
            model_name=params["model"],
            net=net,
            vocab=data.vocab,
            epoch=0,
            best_val_perplexity=float("nan"),
        )
        add_text_reading(ckpt, data.vocab, {"clean": "none", "token": "word", "line_end": "eos"})
        cmd = [
            sys.executable,
            "-m",
            "seqlm.ops.cli",
            "score",
            "--model",
            str(ckpt),
            "--total",
            "--json",
            str(data_dir / "ptb.test.txt"),
        ]
        env = {
            **__import__("os").environ,
            "SEQLM_THREADS": str(threads),
            "OMP_NUM_THREADS": str(threads),
        }
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
        wall = time.perf_counter() - start
    cli = json.loads(proc.stdout.splitlines()[-1])
    cli_seconds = float(proc.stderr.strip().split(" in ")[-1].split(" s")[0])
    assert cli["tokens"] == stage.tokens
    same = abs(cli["nll"] - stage.nll) <= 1e-9 * stage.nll
    print(
        f"PTB test: {stage.tokens} tokens, model {params['model']} {net.num_layers} x "
        f"{net.hidden_size}, output {net.output}, {threads} thread(s); same nll: {same}"
    )
    print(f"{'':34}{'seconds':>9}{'tokens/s':>10}")
    print(
        f"{'evaluate stage (score(), in-process)':34}{stage_seconds:9.2f}"
        f"{stage.tokens / stage_seconds:10.0f}"
    )
    print(f"{'seqlm score: scoring':34}{cli_seconds:9.2f}{stage.tokens / cli_seconds:10.0f}")
    print(f"{'seqlm score: start-up + scoring':34}{wall:9.2f}{stage.tokens / wall:10.0f}")
    print(
        f"target: start-up + score <= 10 s ({'met' if wall <= 10 else 'MISSED'}); CLI scoring "
        f"{cli_seconds / stage_seconds:.2f}x the stage's time (target <= 1.2x)"
    )


def bench_generate(run: Path, threads: int) -> None:
    import torch

    import seqlm

    torch.set_num_threads(threads)
    paths = {
        "neural": run / "data" / "model",
        "ngram": run / "data" / "ngram",
        "ensemble": run / "data" / "ensemble.json",
    }
    print(f"generation, {threads} thread(s): tokens/s")
    print(f"{'model':24}{'sampling (300)':>16}{'beam 5 (50)':>14}")
    for what, path in paths.items():
        if not path.exists():
            print(f"{what:24}{'(not in the run)':>16}")
            continue
        lm = seqlm.load(path)
        start = time.perf_counter()
        n = len(list(lm.generate("the time", 300, seed=0)))
        sampled = n / (time.perf_counter() - start)
        start = time.perf_counter()
        n = len(list(lm.generate("the time", 50, beam=5)))
        beam = n / (time.perf_counter() - start)
        print(f"{what + ' (' + lm.name + ')':24}{sampled:16.0f}{beam:14.1f}")


def bench_capacity(run: Path, threads: int, length: int = 1000, repeat: int = 3) -> None:
    import torch

    import seqlm

    torch.set_num_threads(threads)
    lm = seqlm.load(run / "data" / "model")
    model = lm.model
    print(f"{lm.name}: forward passes over rows of {length} tokens, {threads} thread(s)")
    for batch in (1, 32):
        ids = torch.randint(
            0, len(lm.vocab), (batch, length), generator=torch.Generator().manual_seed(0)
        )
        with torch.no_grad():
            model.stream(ids, None)  # warm-up
            start = time.perf_counter()
            for _ in range(repeat):
                model.stream(ids, None)
            seconds = (time.perf_counter() - start) / repeat
        print(
            f"batch {batch:2}: {1000 * seconds:7.1f} ms a pass, {batch * length / seconds:8.0f} "
            f"tokens/s, {batch / seconds:6.1f} rows/s"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("score", help="seqlm score on PTB test against the evaluate stage")
    s.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    s.add_argument("--threads", type=int, default=2)
    g = sub.add_parser("generate", help="generation tokens/s for each model of a run")
    g.add_argument("--run", type=Path, default=Path("."))
    g.add_argument("--threads", type=int, default=2)
    c = sub.add_parser("capacity", help="scoring tokens/s at batch 1 and 32 (the run's model)")
    c.add_argument("--run", type=Path, default=Path("."))
    c.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.what == "score":
        bench_score(args.data_dir, args.threads)
    elif args.what == "capacity":
        bench_capacity(args.run, args.threads)
    else:
        bench_generate(args.run, args.threads)


if __name__ == "__main__":
    main()
