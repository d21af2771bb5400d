"""The ``seqlm`` command: use a trained model (``score``, ``generate``, ``export``, ``serve``),
tune a recipe (``tune``) and the tools for the pipeline's results (``gate``, ``report``, ``plots``,
``params``).

Each subcommand runs the module of the same name with the rest of the command line, so
``seqlm gate --smoke`` is ``python -m seqlm.ops.gate --smoke``; ``seqlm <command> --help`` lists
its options.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module with a main(argv, prog), one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "score": (
        "seqlm.ops.score",
        "score text with a trained model: per line and in total, or per token (--tokens)",
    ),
    "generate": (
        "seqlm.ops.generate",
        "continue a prompt with a trained model: sampling (seeded) or beam search",
    ),
    "export": (
        "seqlm.ops.export",
        "write a trained model as safetensors + JSON config, or ONNX (checked by onnxruntime)",
    ),
    "serve": (
        "seqlm.serve",
        "serve a run's models over HTTP (JSON endpoints and a page), on 127.0.0.1",
    ),
    "tune": (
        "seqlm.ops.tune",
        "search params on val within a time budget (Optuna; trials are DVC experiments)",
    ),
    "gate": (
        "seqlm.ops.gate",
        "reproduce the pipeline and fail on any difference beyond gate.yaml's tolerances",
    ),
    "report": (
        "seqlm.ops.report",
        "write the leaderboard of the experiments (reports/leaderboard.md) and its plots",
    ),
    "plots": (
        "seqlm.ops.plots",
        "render dvc.yaml's plots to a page that works offline; --check opens it in Chromium",
    ),
    "params": (
        "seqlm.ops.presets",
        "compose conf/ (presets: dataset=ptb, recipe=...) into params.yaml, as dvc exp run does",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """``seqlm COMMAND [ARGS...]``: the command, and everything after it for that command."""
    listing = "\n".join(f"  {name:<8}{text}" for name, (_, text) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="seqlm",
        description="seqlm's tools for trained models and the pipeline's results (no stage uses them).",
        epilog=f"commands:\n{listing}\n\n`seqlm COMMAND --help` lists a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command", choices=COMMANDS, metavar="COMMAND", help=f"one of: {', '.join(COMMANDS)}"
    )
    parser.add_argument(
        "args", nargs=argparse.REMAINDER, metavar="ARGS", help="the command's own options"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand named first in ``argv``; returns its exit status."""
    args = build_parser().parse_args(argv)
    module_name, _ = COMMANDS[args.command]
    module = importlib.import_module(module_name)
    return module.main(args.args, prog=f"seqlm {args.command}")


if __name__ == "__main__":
    sys.exit(main())
