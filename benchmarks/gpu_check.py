"""Train the default recipes on the GPU for a fixed number of steps, then on the CPU, and compare.

For each dataset (``timemachine``: the defaults of ``conf/config.yaml``; ``ptb``: the default PTB
recipe of ``conf/dataset/ptb.yaml``) and each ``--precision``, seqlm's ``train()`` runs ``--steps``
optimizer steps on ``--device`` (its ``on_step`` hook stops it; the partial epoch is then
validated), then the same steps once on the CPU in fp32, the reference. Per run it prints the
device, precision, training tokens/s, peak GPU memory (``torch.cuda.max_memory_allocated``) and
the val perplexity; per device run, the relative difference of its val perplexity from the CPU's
against a tolerance, and whether cuDNN's fused RNN kernel ran (a profiled forward pass)::

    benchmarks/gpu_check.sh                                  # 200 steps, fp32 and bf16
    benchmarks/gpu_check.sh --steps 500 --precision fp32,bf16,fp16 --datasets ptb

Tolerances (relative val perplexity difference from the CPU fp32 run): fp32 2 %, bf16 and fp16
4 %. The GPU run is not the CPU run in other kernels: its dropout masks come from the CUDA
generator, so the two are two draws of the same training, and their val perplexities differ by
about what two seeds of the CPU run differ by (measured on the CPU: the Time Machine defaults after
200 steps, seeds 0–2, 4.883–4.917, a 0.7 % spread; the PTB default after 100 steps, seeds 0–1,
419.7 and 421.0, 0.3 %); the rounding of fp32 kernels adds far less. bf16 keeps 8 bits of mantissa in
the forward pass and fp16 10 bits with loss scaling, which costs a little more early in training.
A difference over the tolerance means the device path trains differently, not noise.

It needs only numpy, pandas, torch, pyyaml, tqdm and pydantic (no dvc, dvclive or hydra): the
data come from ``--text`` / ``--data-dir`` (default ``$SEQLM_MIRROR``, else ``../shared/data``)
and are prepared in memory by seqlm's own data functions. Exit status 1 when a difference is over
its tolerance. Not part of CI (tests/test_benchmarks.py runs it on the CPU with 2 steps).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ptb import composed, ptb_data  # noqa: E402  (a sibling benchmark, not a package)

TOLERANCE = {"fp32": 0.02, "bf16": 0.04, "fp16": 0.04}
"""The largest relative difference of val perplexity from the CPU fp32 run (module docstring)."""

REPO = Path(__file__).resolve().parent.parent


class Run(NamedTuple):
    """One run's figures."""

    dataset: str
    device: str
    precision: str
    steps: int
    tokens_per_second: float
    peak_memory_mib: float | None  # None on the CPU
    val_perplexity: float
    cudnn_rnn: bool | None  # None on the CPU or for a model without a fused RNN


def data_dir() -> Path:
    """``$SEQLM_MIRROR``, else ``../shared/data`` beside the repository."""
    mirror = os.environ.get("SEQLM_MIRROR")
    return Path(mirror) if mirror else REPO.parent / "shared" / "data"


def dataset_setup(dataset: str, args: argparse.Namespace) -> tuple[str, Any, Any, Any]:
    """The model name, NetParams, TrainParams and prepared data of ``dataset``'s default recipe."""
    from seqlm.data.corpus import prepare_text
    from seqlm.params import CleanParams, NetParams, TokenizeParams, TrainParams, VocabParams

    params = composed(dataset)
    if dataset == "ptb":
        data = ptb_data(args.data_dir)
    else:
        text = args.text if args.text is not None else args.data_dir / "timemachine.txt"
        data = prepare_text(
            text.read_bytes(),
            TokenizeParams(**params["tokenize"]),
            VocabParams(**params["vocab"]),
            CleanParams(**params["clean"]),
        )
    train = TrainParams(**params["train"]).replace(threads=args.threads)
    return params["model"], NetParams(**params["net"]), train, data


def cudnn_rnn_used(model: Any, vocab_size: int) -> bool | None:
    """Whether a training-mode forward pass of ``model`` (on CUDA) calls cuDNN's fused RNN."""
    import torch

    if model.device.type != "cuda" or not hasattr(model, "rnn"):
        return None
    x = torch.randint(0, vocab_size, (2, 8), device=model.device)
    activities = [torch.profiler.ProfilerActivity.CPU]
    # the probe's dropout masks come from a forked generator: the training's draws are untouched
    with torch.random.fork_rng(devices=[model.device.index]), torch.no_grad():
        with torch.profiler.profile(activities=activities) as prof:
            model.features(x)
    return any("cudnn_rnn" in event.key for event in prof.key_averages())


def train_steps(dataset: str, setup: tuple, device: str, precision: str, steps: int) -> Run:
    """``steps`` optimizer steps of the recipe on ``device`` in ``precision``: the run's figures."""
    import torch

    from seqlm.neural.loop import train

    model_name, net, params, data = setup
    params = params.replace(device=device, precision=precision)
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    probe: dict[str, bool | None] = {}

    def on_step(step: int, model: Any) -> bool:
        if step == 1:
            probe["cudnn"] = cudnn_rnn_used(model, len(data.vocab))
        return step >= steps

    with tempfile.TemporaryDirectory() as tmp:
        result = train(
            model_name,
            net,
            params,
            data.vocab,
            data.splits["train"],
            data.splits["val"],
            checkpoint_path=Path(tmp) / "model.pt",
            on_step=on_step,
        )
    return Run(
        dataset=dataset,
        device=result.device,
        precision=precision,
        steps=steps,
        tokens_per_second=result.tokens_per_second,
        peak_memory_mib=torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        val_perplexity=result.history[-1].val_perplexity,
        cudnn_rnn=probe.get("cudnn"),
    )


def describe(run: Run) -> str:
    """One line of figures."""
    memory = f"{run.peak_memory_mib:,.0f} MiB" if run.peak_memory_mib is not None else "-"
    cudnn = {None: "-", True: "yes", False: "NO"}[run.cudnn_rnn]
    return (
        f"{run.dataset:<12} {run.device:<6} {run.precision:<5} {run.steps:>6} "
        f"{run.tokens_per_second:>12,.0f} {memory:>12} {run.val_perplexity:>12.4f} {cudnn:>6}"
    )


def compare(run: Run, reference: Run) -> tuple[str, bool]:
    """The line comparing ``run`` with the CPU ``reference``, and whether it is in tolerance."""
    diff = abs(run.val_perplexity - reference.val_perplexity) / reference.val_perplexity
    tolerance = TOLERANCE[run.precision]
    ok = diff <= tolerance
    return (
        f"{run.dataset} {run.device} {run.precision} vs cpu fp32: val perplexity "
        f"{run.val_perplexity:.4f} vs {reference.val_perplexity:.4f}, difference "
        f"{diff:.2%} (tolerance {tolerance:.0%}): {'ok' if ok else 'OVER'}"
    ), ok


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=200, help="optimizer steps per run")
    ap.add_argument("--precision", default="fp32,bf16", help="comma list of fp32, bf16, fp16")
    ap.add_argument("--datasets", default="timemachine,ptb", help="comma list: timemachine, ptb")
    ap.add_argument("--device", default="cuda", help="the device under test: cuda or cpu")
    ap.add_argument("--data-dir", type=Path, default=data_dir(), help="folder of the corpora")
    ap.add_argument("--text", type=Path, default=None, help="another text for timemachine")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = ap.parse_args(argv)
    args.precisions = [p for p in args.precision.split(",") if p]
    args.dataset_names = [d for d in args.datasets.split(",") if d]
    unknown = set(args.precisions) - set(TOLERANCE)
    if unknown or set(args.dataset_names) - {"timemachine", "ptb"}:
        ap.error(f"unknown precision or dataset in {args.precision!r} / {args.datasets!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(f"torch {torch.__version__}, {gpu}, cuDNN {torch.backends.cudnn.version()}")
    print(f"{'dataset':<12} {'device':<6} {'prec':<5} {'steps':>6} {'tokens/s':>12} "
          f"{'peak memory':>12} {'val ppl':>12} {'cudnn':>6}")  # fmt: skip
    verdicts: list[str] = []
    all_ok = True
    for dataset in args.dataset_names:
        setup = dataset_setup(dataset, args)
        runs = []
        for precision in args.precisions:
            if precision == "fp16" and args.device == "cpu":
                print(f"{dataset:<12} cpu    fp16   (fp16 trains on CUDA only: skipped)")
                continue
            runs.append(train_steps(dataset, setup, args.device, precision, args.steps))
            print(describe(runs[-1]), flush=True)
        reference = train_steps(dataset, setup, "cpu", "fp32", args.steps)
        print(describe(reference), flush=True)
        for run in runs:
            line, ok = compare(run, reference)
            verdicts.append(line)
            all_ok &= ok
    print("\n".join(verdicts))
    return 0 if all_ok else 1


if __name__ == "__main__":
    start = time.perf_counter()
    code = main()
    print(f"{time.perf_counter() - start:.0f} s")
    sys.exit(code)
