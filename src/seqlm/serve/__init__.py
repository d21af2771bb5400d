"""``seqlm serve``: a run's models over HTTP (JSON endpoints and a page), on 127.0.0.1.

By default the models a run leaves in ``--run DIR`` (default ``.``) are served, those present:
``data/model`` under its model's name (``lstm``, ``transformer``, ...), ``data/ngram`` as
``ngram`` and ``data/ensemble.json`` as ``ensemble``. ``--model NAME=PATH`` serves any file
``seqlm.load`` reads as NAME instead (with ``--run`` as well: besides the run's).

    seqlm serve                                    # this run's models, http://127.0.0.1:8000/
    seqlm serve --run ../other-run --port 8080
    seqlm serve --model lstm=data/model --model kn=lm.arpa --max-chars 5000

The page (``/``) colours each token of a text by its surprisal under every model side by side and
continues a prompt; the JSON API (``/api/score``, ``/api/logprobs``, ``/api/generate``,
``/api/models``, ``/healthz``) is described at ``/openapi.json`` and in :mod:`seqlm.serve.app`. There is no
authentication: keep the default host unless the network is trusted.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from seqlm.core.errors import ParamError, SeqlmError
from seqlm.lm.base import LanguageModel
from seqlm.serve.app import Limits, create_app

__all__ = ["Limits", "create_app", "main", "run_models"]

# what a run leaves, in the order served: (name, or None for the model's own, path in the run)
RUN_MODELS: tuple[tuple[str | None, str], ...] = (
    (None, "data/model"),
    ("ngram", "data/ngram"),
    ("ensemble", "data/ensemble.json"),
)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def parse_model(spec: str) -> tuple[str, Path]:
    """``NAME=PATH`` → (NAME, PATH); a ParamError says what is wrong."""
    name, sep, path = spec.partition("=")
    if not sep or not path:
        raise ParamError(f"--model {spec!r} is not NAME=PATH (e.g. --model lstm=data/model)")
    if not NAME.fullmatch(name):
        raise ParamError(
            f"--model {spec!r}: the name {name!r} must be letters, digits, '.', '_' or '-'"
        )
    return name, Path(path)


def run_models(run: Path) -> list[tuple[str | None, Path]]:
    """The models present in the run folder ``run``: (the name to serve it as, or None for its
    own; its path)."""
    return [(name, run / rel) for name, rel in RUN_MODELS if (run / rel).exists()]


def load_models(
    run: Path | None, specs: Sequence[str], device: str = "cpu"
) -> dict[str, LanguageModel]:
    """Load what the command line names, by the name each is served as (a SeqlmError if none is
    found, one fails to load, or two share a name)."""
    from seqlm.lm import load

    wanted: list[tuple[str | None, Path]] = []
    if run is not None or not specs:
        folder = run if run is not None else Path(".")
        found = run_models(folder)
        if not found and not specs:
            listed = ", ".join(rel for _, rel in RUN_MODELS)
            raise SeqlmError(
                f"no model found in {str(folder)!r}: expected one of {listed} (run `dvc repro` "
                f"there, point --run at a run folder, or give --model NAME=PATH)"
            )
        wanted += found
    wanted += [parse_model(spec) for spec in specs]
    models: dict[str, LanguageModel] = {}
    for name, path in wanted:
        lm = load(path, device)
        served = name or lm.name
        if served in models:
            raise ParamError(f"two models are named {served!r}: give one another with NAME=PATH")
        models[served] = lm
    return models


def cap_threads(count: int) -> None:
    """Let torch and the BLAS libraries use at most ``count`` threads per operation."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(count)
    threadpool_limits(limits=count)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (port 0: a free one the system picks)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    """The http URL a bound socket answers on."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.1, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command line of ``seqlm serve``."""
    ap = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = Limits()
    ap.add_argument("--run", type=Path, help="the run folder whose models to serve (default .)")
    ap.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="serve the model at PATH as NAME (repeatable); replaces the run's unless --run is given",
    )
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    ap.add_argument("--port", type=int, default=8000, help="port (8000; 0 picks a free one)")
    ap.add_argument(
        "--max-chars",
        type=int,
        default=defaults.max_chars,
        help=f"longest text or prompt, in characters ({defaults.max_chars:,}; 413 over it)",
    )
    ap.add_argument(
        "--max-tokens",
        type=int,
        default=defaults.max_tokens,
        help=f"most tokens one generation may ask for ({defaults.max_tokens}; 422 over it)",
    )
    ap.add_argument(
        "--timeout",
        type=float,
        default=defaults.timeout,
        help=f"seconds a generation may run; then it answers what it has ({defaults.timeout:g})",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads per operation (1)")
    ap.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        help=f"requests scored at once, and generations at once; the rest wait their turn "
        f"({defaults.workers}: this many cores' worth at --threads 1)",
    )
    ap.add_argument("--device", default="cpu", help="torch device for neural models (cpu)")
    ap.add_argument("--access-log", action="store_true", help="log every request")
    return ap


def check_args(args: argparse.Namespace) -> Limits:
    """The limits the options set (a ParamError for an option out of range)."""
    if min(args.max_chars, args.max_tokens, args.threads, args.workers) < 1:
        raise ParamError("--max-chars, --max-tokens, --threads and --workers must be >= 1")
    if not args.timeout > 0:
        raise ParamError(f"--timeout {args.timeout} must be > 0 seconds")
    if not 0 <= args.port <= 65535:
        raise ParamError(f"--port {args.port} is not a port (0 to 65535)")
    return Limits(
        max_chars=args.max_chars,
        max_tokens=args.max_tokens,
        timeout=args.timeout,
        workers=args.workers,
    )


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``seqlm serve``: serve until interrupted (Ctrl-C: exit 0); returns the exit status (2 on bad
    options, no model, or an address that cannot be bound)."""
    ap = build_parser(prog)
    args = ap.parse_args(argv)
    try:
        limits = check_args(args)
        cap_threads(args.threads)
        models = load_models(args.run, args.model, args.device)
        app = create_app(models, limits)
        sock = bind(args.host, args.port)
    except (SeqlmError, OSError) as e:
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 2
    import uvicorn

    if not is_loopback(args.host):
        print(
            f"{ap.prog}: warning: listening on {args.host}: anyone who can reach it may use the "
            "models (there is no authentication)",
            file=sys.stderr,
        )
    config = uvicorn.Config(
        app, log_level="info", access_log=args.access_log, timeout_graceful_shutdown=5
    )
    names = ", ".join(f"{name} ({lm.kind})" for name, lm in models.items())
    print(
        f"serving {names} at {url_of(sock)} (API schema at {url_of(sock)}openapi.json)", flush=True
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn stops cleanly on Ctrl-C, then raises it again
        pass
    finally:
        sock.close()
    return 0
