"""Stage ``train``: train the neural language model picked by ``model``, keep the best val
evaluation (:mod:`seqlm.neural.trainer`).

With ``train.processes`` > 1 the stage starts itself again under ``torchrun`` (that many processes on
this node) and waits; started by ``torchrun`` (``RANK`` and ``WORLD_SIZE`` set, e.g. a multi-node
launch) it trains as the rank it is given. At every evaluation rank 0 saves a resumable state in
``--state-dir`` (not a DVC output, so DVC leaves it when the stage reruns); rerun after a crash, it
continues from there when the params, processes and data are the same.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from seqlm.core.atomic import remove_outputs
from seqlm.core.stage import parser, run_stage
from seqlm.neural.distributed import (
    check_batch_split,
    die_with_launcher,
    leave,
    relaunch,
    under_torchrun,
)
from seqlm.neural.trainer import TrainFiles, train_here
from seqlm.params import TrainParams, load_section

log = logging.getLogger("seqlm.stages.train")
ARGUMENTS = {
    "--vocab": "vocabulary TSV",
    "--corpus-dir": "the corpus stage's folder of split ids",
    "--tokens-dir": "the tokenize stage's folder",
    "--checkpoint": "where to write the best checkpoint (.pt; safetensors and config.json beside)",
    "--metrics": "training summary JSON",
    "--live-dir": "DVCLive folder for the curves",
    "--state-dir": "folder for the resumable state (kept across a crash, removed when training "
    "ends); without it, nothing is saved or resumed",
}


def body(args: argparse.Namespace) -> None:
    params = load_section(TrainParams, "train", args.params)
    if params.processes > 1 and not under_torchrun():
        check_batch_split(params.batch_size, params.processes)
        remove_outputs(args.checkpoint, args.metrics)
        log.info("starting %d training processes with torchrun", params.processes)
        relaunch("stages.train", args.argv, params.processes)
        return
    if under_torchrun():
        die_with_launcher()  # a killed torchrun (or dvc repro) takes this worker with it
    files = TrainFiles(
        args.params,
        args.vocab,
        args.corpus_dir,
        args.tokens_dir,
        args.checkpoint,
        args.metrics,
        args.live_dir,
        args.state_dir,
    )
    try:
        train_here(files, params)
    finally:
        leave()


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__)
    for flag, what in ARGUMENTS.items():
        ap.add_argument(flag, required=flag != "--state-dir", help=what)
    ap.set_defaults(argv=list(sys.argv[1:] if argv is None else argv))  # for a torchrun relaunch
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
