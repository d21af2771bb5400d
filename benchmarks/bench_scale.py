"""Scaling of the data stages and the n-gram stage with the corpus size (run by hand; prints
figures, asserts nothing).

For each size (MB) it builds a character-level corpus from the Penn Treebank in ``../shared/data``
(or ``$SEQLM_MIRROR``): train is ``ptb.train.txt`` repeated, whole lines, up to the size; val and
test are PTB's own. A ``params.yaml`` with the ``ptb`` dataset's settings but ``tokenize.token:
char`` and ``ngram.order: 7`` points the download stage at those files (``file://`` URLs with their
sha1s); then download, clean, tokenize, vocab, corpus and ngram run, each as its own subprocess
(``python -m stages.<name>`` with dvc.yaml's arguments, in a folder per size). The table gives,
per stage (``MB``: the train size asked for; ``corpus MB``: train, val and test), its wall time,
CPU time and peak resident memory (``os.wait4``'s rusage of that child) and throughput (MB/s
of wall time; on a busy machine CPU time is the steadier figure); ``tree PSS MB`` is the peak
proportional set size of the stage and the worker processes it forks, sampled every 200 ms (pages
they share counted once), where ``peak RSS`` is one process's. ``--token bpe`` (or ``unigram``)
tokenizes into ``--vocab-size`` subword pieces instead: the tokenize row is then the subword
model's training on train and the encoding of every split (issue target: 10 MB in 10 s). Beside
the n-gram row: KenLM's ``lmplz`` on the same kind of model and our ratio to it — run here on the
same train text with ``--lmplz PATH`` (``lmplz -o 7 -S 1G``: each line a sentence, one token per
character, the space written ``_``; wall time and peak RSS measured like a stage's), else the figure
measured once on the development machine (14 s and 0.35 GB for 44M train characters at order 7)
scaled linearly to the train characters here.

The n-gram stage runs twice: with ``SEQLM_THREADS=1`` (one process) and as a user runs it (its share
of the CPUs); the ``counting`` rows give the counting pass's seconds from each run's log, and their
ratio is the speed-up of counting from one process to the share (outputs identical either way).

Usage::

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1,10,100] [--workdir DIR] [--keep]
    .venv/bin/python benchmarks/bench_scale.py --sizes 100 --lmplz ../kenlm/build/bin/lmplz
    .venv/bin/python benchmarks/bench_scale.py --sizes 10 --token bpe --vocab-size 8000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
# KenLM lmplz -o 7 on 44M PTB train characters, measured on the 2-core development machine
LMPLZ = {"chars": 44e6, "seconds": 14.0, "gb": 0.35}
DATA_STAGES = ("download", "clean", "tokenize", "vocab", "corpus")
BENCHED = (*DATA_STAGES, "ngram")


def stage_commands() -> dict[str, list[str]]:
    """Each benchmarked stage's command line, as ``dvc.yaml`` writes it (its paths live there)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    out = {}
    for name in BENCHED:
        cmd = shlex.split(stages[name]["cmd"])
        if cmd[:3] != ["python", "-m", f"stages.{name}"]:
            raise SystemExit(f"dvc.yaml's {name} command is not `python -m stages.{name} ...`")
        out[name] = [sys.executable, *cmd[1:]]
    return out


STAGES = stage_commands()


def source_dir() -> Path:
    """Where the PTB files are: ``$SEQLM_MIRROR`` or ``../shared/data``."""
    return Path(os.environ.get("SEQLM_MIRROR") or REPO.parent / "shared" / "data")


def build_corpus(size_mb: float, out: Path) -> dict[str, Path]:
    """``train.txt`` (PTB train repeated to ``size_mb`` MB, whole lines), ``val.txt``, ``test.txt``."""
    out.mkdir(parents=True, exist_ok=True)
    src = source_dir()
    lines = (src / "ptb.train.txt").read_bytes().splitlines(keepends=True)
    target, written = int(size_mb * 1e6), 0
    with open(out / "train.txt", "wb") as f:
        while written < target:
            for line in lines:
                f.write(line)
                written += len(line)
                if written >= target:
                    break
    shutil.copyfile(src / "ptb.valid.txt", out / "val.txt")
    shutil.copyfile(src / "ptb.test.txt", out / "test.txt")
    return {s: out / f"{s}.txt" for s in ("train", "val", "test")}


def write_params(
    files: dict[str, Path], folder: Path, token: str = "char", vocab_size: int | None = None,
    memory_mb: int | None = None, order: int = 7,
) -> None:  # fmt: skip
    """params.yaml: the defaults with the ptb dataset's settings, ``token`` tokens, ``order`` (7)
    without the n-gram's dynamic evaluation (and ``ngram.memory_mb`` when given)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    ptb = yaml.safe_load((REPO / "conf" / "dataset" / "ptb.yaml").read_text(encoding="utf-8"))
    for section in ("clean", "tokenize", "vocab", "generate"):
        params[section].update(ptb.get(section, {}))
    params["dataset"] = "ptb"
    params["tokenize"]["token"] = token
    subword = token in ("bpe", "unigram")
    params["tokenize"]["vocab_size"] = vocab_size if subword else None
    if subword:  # the tokenizer sizes the vocabulary: every piece
        params["vocab"].update(min_freq=1, max_size=None)
    # the model as lmplz estimates it: no dynamic evaluation (its refits are another cost, measured
    # by the ngram stage's metrics as `dynamic.seconds`)
    params["ngram"].update(order=order, max_order=order, dynamic=False)
    if memory_mb is not None:
        params["ngram"]["memory_mb"] = memory_mb
    splits = {}
    for split, path in files.items():
        digest = hashlib.sha1()
        with open(path, "rb") as f:  # by blocks: the stages fork from this process, and their
            while block := f.read(1 << 24):  # peak RSS starts from its own
                digest.update(block)
        splits[split] = {"url": path.resolve().as_uri(), "sha1": digest.hexdigest()}
    params["download"].update(url=None, sha1=None, splits=splits)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")


def tree_pss_mb(pid: int) -> float:
    """The proportional set size of ``pid`` and every process below it, in MB (pages shared
    between a stage and the workers it forked counted once in all)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
            total += next(
                int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")
            )
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue  # gone meanwhile
    return total / 1024


class PeakSampler:
    """Samples :func:`tree_pss_mb` of a process every ``every`` seconds, in a thread."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.pid, self.every, self.peak = pid, every, 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.peak = max(self.peak, tree_pss_mb(self.pid))

    def close(self) -> float:
        self.stop.set()
        self.thread.join()
        return self.peak


def measured(
    command: list[str], folder: Path, log_name: str, env: dict[str, str] | None = None,
    stdin: Path | None = None, stdout: Path | None = None,
) -> tuple[float, float, float, float]:  # fmt: skip
    """Run ``command`` in ``folder`` as a child process: (wall seconds, CPU seconds of it and the
    processes it waited for, its peak RSS MB, the peak PSS MB of it and the processes it forked,
    sampled); its log in ``folder / log_name``."""
    log = open(folder / log_name, "wb")  # noqa: SIM115
    source = open(stdin, "rb") if stdin else None  # noqa: SIM115
    sink = open(stdout, "wb") if stdout else log  # noqa: SIM115
    t0 = time.perf_counter()
    proc = subprocess.Popen(command, cwd=folder, env=env, stdin=source, stdout=sink,
                            stderr=log if stdout else subprocess.STDOUT)  # fmt: skip
    sampler = PeakSampler(proc.pid)
    _, status, usage = os.wait4(proc.pid, 0)
    pss = sampler.close()
    wall = time.perf_counter() - t0
    cpu = usage.ru_utime + usage.ru_stime  # with the processes it forked and waited for
    for f in (log, source, sink if stdout else None):
        if f is not None:
            f.close()
    if os.waitstatus_to_exitcode(status):
        tail = (folder / log_name).read_text(encoding="utf-8", errors="replace")[-2000:]
        raise SystemExit(f"{command[0]} failed in {folder}:\n{tail}")
    return wall, cpu, usage.ru_maxrss / 1024, pss  # Linux: kilobytes


def run_stage(
    name: str, folder: Path, threads: str | None = None, log_name: str | None = None
) -> tuple[float, float, float, float]:
    """Run one stage in ``folder`` as a child process: (wall seconds, CPU seconds, peak RSS MB);
    ``threads``: its ``SEQLM_THREADS``."""
    env = dict(os.environ, SEQLM_NO_PROGRESS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO), env.get("PYTHONPATH", "")])
    env.pop("SEQLM_MIRROR", None)  # the file:// URLs are the corpus
    env.pop("SEQLM_THREADS", None)
    if threads:
        env["SEQLM_THREADS"] = threads
    return measured(STAGES[name], folder, log_name or f"{name}.log", env)


COUNTED = re.compile(r"counted in ([0-9.]+) s over (\d+) process")


def counting_seconds(log: Path) -> tuple[float, int]:
    """The n-gram stage's counting seconds and processes, from its log."""
    found = COUNTED.search(log.read_text(encoding="utf-8", errors="replace"))
    if not found:
        raise SystemExit(f"{log} does not say how long counting took")
    return float(found.group(1)), int(found.group(2))


def run_lmplz(
    lmplz: Path, files: dict[str, Path], folder: Path, order: int = 7
) -> tuple[float, float, float, float]:
    """``lmplz -o <order> -S 1G`` on the train text (a sentence a line, a token a character, the space
    written ``_``), measured like a stage."""
    text = folder / "lmplz-input.txt"
    with open(files["train"], encoding="utf-8") as src, open(text, "w", encoding="utf-8") as out:
        for line in src:
            chars = line.rstrip("\n")
            if chars.strip():
                out.write(" ".join("_" if c == " " else c for c in chars) + "\n")
    command = [str(lmplz), "-o", str(order), "-S", "1G", "-T", str(folder), "--discount_fallback"]
    return measured(command, folder, "lmplz.log", stdin=text, stdout=folder / "lmplz.arpa")


def bench_size(
    size_mb: float, workdir: Path, token: str = "char", vocab_size: int | None = None,
    lmplz: Path | None = None, memory_mb: int | None = None, order: int = 7,
) -> list[dict[str, object]]:  # fmt: skip
    """Every stage at one size: one table row each, one for the data stages together, the n-gram
    stage on one process and its counting passes."""
    folder = workdir / f"{size_mb:g}MB"
    shutil.rmtree(folder, ignore_errors=True)
    files = build_corpus(size_mb, folder / "source")
    write_params(files, folder, token, vocab_size, memory_mb, order)
    corpus_mb = sum(p.stat().st_size for p in files.values()) / 1e6
    rows = []
    for name in STAGES:
        wall, cpu, rss, pss = run_stage(name, folder)
        rows.append({"stage": name, "size": size_mb, "wall": wall, "cpu": cpu, "rss": rss,
                     "pss": pss, "mb": corpus_mb})  # fmt: skip
    data = [r for r in rows if r["stage"] in DATA_STAGES]
    total = {"stage": "data stages", "size": size_mb, "mb": corpus_mb}
    total.update(
        wall=sum(r["wall"] for r in data),
        cpu=sum(r["cpu"] for r in data),
        rss=max(r["rss"] for r in data),
        pss=max(r["pss"] for r in data),
    )
    rows.insert(len(data), total)
    if lmplz is not None:
        wall, cpu, rss, pss = run_lmplz(lmplz, files, folder, order)
        rows[-1].update(lmplz_s=wall, lmplz_gb=rss / 1024)
    else:
        stats = json.loads((folder / "metrics" / "data.json").read_text(encoding="utf-8"))
        scale = stats["train"]["characters"] / LMPLZ["chars"]
        rows[-1].update(lmplz_s=LMPLZ["seconds"] * scale, lmplz_gb=LMPLZ["gb"] * scale)
    shared, workers = counting_seconds(folder / "ngram.log")
    wall, cpu, rss, pss = run_stage("ngram", folder, threads="1", log_name="ngram-1.log")
    alone, _ = counting_seconds(folder / "ngram-1.log")
    one = {"stage": "ngram 1 proc", "size": size_mb, "wall": wall, "cpu": cpu, "rss": rss,
           "pss": pss}  # fmt: skip
    rows.append({**one, "mb": corpus_mb})
    for label, seconds in (("counting 1", alone), (f"counting {workers}", shared)):
        rows.append({"stage": label, "size": size_mb, "wall": seconds, "cpu": float("nan"),
                     "rss": float("nan"), "pss": float("nan"), "mb": corpus_mb})  # fmt: skip
    rows[-1]["speedup"] = alone / shared
    return rows


def table(rows: list[dict[str, object]]) -> str:
    """The figures as a fixed-width table."""
    head = f"{'stage':<12} {'MB':>7} {'corpus MB':>9} {'wall s':>8} {'cpu s':>7}"
    head += f" {'peak RSS MB':>12} {'tree PSS MB':>12} {'MB/s':>7}"
    head += f" {'lmplz s':>8} {'lmplz GB':>9} {'ratio':>6}"
    out = [head, "-" * len(head)]
    for r in rows:
        line = f"{r['stage']:<12} {r['size']:>7g} {r['mb']:>9.2f} {r['wall']:>8.2f}"
        line += f" {r['cpu']:>7.2f} {r['rss']:>12.0f} {r['pss']:>12.0f}"
        line += f" {r['mb'] / max(r['wall'], 1e-9):>7.2f}"
        if "lmplz_s" in r:
            ratio = r["wall"] / r["lmplz_s"]
            line += f" {r['lmplz_s']:>8.2f} {r['lmplz_gb']:>9.3f} {ratio:>5.1f}x"
        if "speedup" in r:
            line += f"   speed-up of counting: {r['speedup']:.2f}x"
        out.append(line)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="1,10,100", help="corpus sizes in MB, comma-separated")
    ap.add_argument(
        "--workdir", default=None, help="folder for the runs (default: a temporary one)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the runs' folders")
    ap.add_argument("--token", default="char", choices=["char", "bpe", "unigram"])
    ap.add_argument("--vocab-size", type=int, default=8000, help="subword pieces (bpe, unigram)")
    ap.add_argument("--lmplz", type=Path, default=None, help="KenLM's lmplz, run beside the stage")
    ap.add_argument(
        "--memory-mb", type=int, default=None, help="ngram.memory_mb (default: params')"
    )
    ap.add_argument("--order", type=int, default=7, help="the n-gram's order (and lmplz's)")
    args = ap.parse_args(argv)
    sizes = [float(s) for s in args.sizes.split(",") if s.strip()]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="seqlm-bench-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    try:
        for size in sizes:
            rows += bench_size(
                size, workdir, args.token, args.vocab_size, args.lmplz, args.memory_mb, args.order
            )
            print(table([r for r in rows if r["size"] == size]), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nall sizes (python {sys.version.split()[0]}, {os.cpu_count()} CPUs):")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
