"""Load on ``seqlm serve``: concurrent clients scoring 1,000-character texts with the neural model.

Run by hand (figures printed; never part of the test suite)::

    python benchmarks/bench_serve.py --run .                 # after dvc repro: 32 clients, 60 s
    python benchmarks/bench_serve.py --run /tmp/run --smoke  # 4 clients for 3 s: it works

It starts the real server (``python -m seqlm.ops.cli serve --run DIR --port 0``, a subprocess on
a free port of 127.0.0.1), finds the neural model in ``/api/models``, and has ``--clients``
threads (each with its own keep-alive httpx client) post ``/api/score`` requests back to back for
``--seconds``, each text ``--chars`` characters cut from ``--text`` (default: the Time Machine
from ``$SEQLM_MIRROR`` or ``../shared/data``) at a different place. Then it prints the requests
answered, the errors (any answer but 200, or none in time), the latency (p50, p95, max), the
requests per second, and the server's resident memory before, at its peak and after (psutil);
and stops the server. The clients run on the same machine as the server, so they take some of
its CPU.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

MIRROR_ENV = "SEQLM_MIRROR"
START_TIMEOUT_S = 120.0  # loading a large checkpoint can take a while
REQUEST_TIMEOUT_S = 60.0


def default_text() -> Path:
    """The Time Machine from the offline mirror, else ../shared/data."""
    mirror = os.environ.get(MIRROR_ENV)
    if mirror and (Path(mirror) / "timemachine.txt").is_file():
        return Path(mirror) / "timemachine.txt"
    return Path("../shared/data/timemachine.txt")


def cut_texts(text: str, chars: int, count: int) -> list[str]:
    """``count`` pieces of ``chars`` characters of ``text``, from places spread across it."""
    if len(text) < chars:
        raise SystemExit(f"the text has {len(text)} characters; need at least {chars}")
    starts = [(i * 7919) % (len(text) - chars + 1) for i in range(count)]
    return [text[s : s + chars] for s in starts]


@dataclass
class Server:
    """``seqlm serve`` running as a subprocess."""

    proc: subprocess.Popen
    url: str
    log: Path

    def rss(self) -> int:
        """The server's resident memory, in bytes."""
        return psutil.Process(self.proc.pid).memory_info().rss

    def stop(self) -> int | None:
        """Ctrl-C, then kill if it has not stopped within 10 s; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(run: Path, threads: int, workers: int, log: Path) -> Server:
    """Start ``seqlm serve --run RUN --port 0`` and wait until it answers /healthz."""
    cmd = [sys.executable, "-m", "seqlm.ops.cli", "serve", "--run", str(run), "--port", "0"]
    cmd += ["--threads", str(threads), "--workers", str(workers)]
    err = log.open("w")
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    err.close()
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT_S)
    line = first[0] if first else ""
    if " at http://" not in line:
        proc.kill()
        proc.wait()
        raise SystemExit(
            f"seqlm serve did not start ({line.strip()!r}):\n{log.read_text()[-3000:]}"
        )
    url = line.split(" at ", 1)[1].split()[0].rstrip("/")
    server = Server(proc, url, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            server.stop()
            raise SystemExit(f"seqlm serve never answered:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def neural_model(url: str) -> str:
    """The name of the first neural model the server serves."""
    models = httpx.get(f"{url}/api/models", timeout=10).json()["models"]
    for m in models:
        if m["kind"] == "neural":
            return m["name"]
    raise SystemExit(f"the server has no neural model: {[m['name'] for m in models]}")


@dataclass
class Tally:
    """What the clients saw, shared between their threads."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, ms: float) -> None:
        with self.lock:
            self.latencies_ms.append(ms)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1


def client_loop(url: str, model: str, texts: list[str], stop_at: float, tally: Tally) -> None:
    """Score the texts in turn, back to back, until ``stop_at``."""
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        i = 0
        while time.monotonic() < stop_at:
            body = {"model": model, "text": texts[i % len(texts)]}
            i += 1
            t0 = time.perf_counter()
            try:
                r = client.post("/api/score", json=body)
            except httpx.HTTPError as e:
                tally.error(type(e).__name__)
                continue
            ms = (time.perf_counter() - t0) * 1000
            if r.status_code == 200:
                tally.answer(ms)
            else:
                tally.error(f"HTTP {r.status_code}")


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of sorted values, by the nearest rank."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def watch_rss(server: Server, stop: threading.Event, peak: list[int]) -> None:
    """Keep the largest RSS seen, every 0.2 s, until ``stop``."""
    while not stop.wait(0.2):
        try:
            peak[0] = max(peak[0], server.rss())
        except psutil.Error:
            return


def load(
    url: str, model: str, texts: list[str], clients: int, seconds: float, tally: Tally
) -> float:
    """``clients`` threads scoring back to back for ``seconds``; the seconds it took."""
    start = time.monotonic()
    threads = [
        threading.Thread(
            target=client_loop,
            args=(url, model, texts[c::clients] or texts, start + seconds, tally),
            daemon=True,
        )
        for c in range(clients)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + REQUEST_TIMEOUT_S + 5)
    return time.monotonic() - start


def run(args: argparse.Namespace) -> int:
    """Start the server, load it, print the figures; the exit status (1 on any error)."""
    text = args.text.read_text(encoding="utf-8")
    texts = cut_texts(text, args.chars, max(64, args.clients * 4))
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(args.run, args.threads, args.workers, Path(tmp) / "serve.log")
        try:
            model = neural_model(server.url)
            warm = httpx.post(
                f"{server.url}/api/score", json={"model": model, "text": texts[0]}, timeout=60
            )
            if warm.status_code != 200:
                raise SystemExit(f"the first request failed: {warm.status_code} {warm.text}")
            rss_before = server.rss()
            # a warm-up at the same load, not counted: the allocator's pools reach their size
            load(server.url, model, texts, args.clients, args.warmup, Tally())
            rss_warm = server.rss()
            peak = [rss_warm]
            tally = Tally()
            stop = threading.Event()
            watcher = threading.Thread(target=watch_rss, args=(server, stop, peak), daemon=True)
            watcher.start()
            elapsed = load(server.url, model, texts, args.clients, args.seconds, tally)
            stop.set()
            watcher.join()
            rss_after = server.rss()
        finally:
            status = server.stop()
    lat = sorted(tally.latencies_ms)
    errors = sum(tally.errors.values())
    mib = 1024 * 1024
    print(
        f"seqlm serve --run {args.run} --threads {args.threads} --workers {args.workers}: "
        f"model {model!r}, "
        f"{args.clients} clients x {args.chars}-character texts from {args.text.name}, "
        f"{elapsed:.1f} s"
    )
    print(f"  requests answered: {len(lat)}")
    detail = (
        f" ({', '.join(f'{k}: {v}' for k, v in sorted(tally.errors.items()))})" if errors else ""
    )
    print(f"  errors: {errors}{detail}")
    print(
        f"  latency ms: p50 {percentile(lat, 0.5):.1f}, p95 {percentile(lat, 0.95):.1f}, "
        f"max {lat[-1] if lat else float('nan'):.1f}"
    )
    print(f"  requests/s: {len(lat) / elapsed:.1f}")
    print(
        f"  server RSS MiB: before {rss_before / mib:.1f}, after the {args.warmup:g} s warm-up "
        f"{rss_warm / mib:.1f}, peak {peak[0] / mib:.1f}, after {rss_after / mib:.1f} "
        f"(growth over the run: {(rss_after - rss_warm) / mib:+.1f})"
    )
    print(f"  server stopped (exit status {status})")
    return 1 if errors or not lat else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--run", type=Path, default=Path("."), help="the run folder to serve (.)")
    ap.add_argument("--text", type=Path, default=None, help="the text to cut requests from")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to load it (60)")
    ap.add_argument("--clients", type=int, default=32, help="concurrent clients (32)")
    ap.add_argument("--chars", type=int, default=1000, help="characters per text (1000)")
    ap.add_argument("--threads", type=int, default=1, help="the server's --threads (1)")
    ap.add_argument("--workers", type=int, default=2, help="the server's --workers (2)")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds of uncounted load (10)")
    ap.add_argument("--smoke", action="store_true", help="4 clients for 3 s: check that it runs")
    args = ap.parse_args(argv)
    if args.smoke:
        args.seconds, args.clients, args.warmup = 3.0, 4, 1.0
    args.text = args.text or default_text()
    if not args.text.is_file():
        raise SystemExit(f"no text at {args.text}: give --text FILE or set {MIRROR_ENV}")
    if args.clients < 1 or args.seconds <= 0 or args.chars < 1:
        raise SystemExit("--clients, --seconds and --chars must be positive")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
