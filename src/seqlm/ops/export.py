"""``seqlm export``: write a trained model as safetensors + JSON config, or as ONNX.

``--safetensors DIR`` writes ``DIR/model.safetensors`` and ``DIR/config.json`` (the model loads
from them without unpickling anything: ``seqlm.load(DIR)``); ``--onnx OUT.onnx`` writes the model
as an ONNX graph from ``ids`` (int64, ``(1, T)``, ``<bos>`` first) to ``logprobs`` (float32,
``(1, T, V)``, natural log), then runs it with onnxruntime on a fixed input of 32 ids (at most the
transformer's context) and fails unless its log-probabilities are within 1e-4 of torch's. The
formats: :mod:`seqlm.neural.export` and :mod:`seqlm.neural.onnx`. ONNX takes the rnn, gru,
lstm and transformer models.

    seqlm export --safetensors export/                        # from data/model/model.pt
    seqlm export --model data/model/model.pt --onnx model.onnx
    seqlm export --model export/ --onnx model.onnx            # from the safetensors files
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from seqlm.core.atomic import atomic_path
from seqlm.core.errors import DataError, SeqlmError
from seqlm.data.vocab import Vocab
from seqlm.neural.checkpoint import CheckpointInfo, load_standalone
from seqlm.neural.export import (
    SAFETENSORS_NAME,
    load_portable,
    save_portable,
    write_portable,
)
from seqlm.neural.models import NeuralLM, TransformerLM
from seqlm.neural.onnx import (
    PARITY_LENGTH,
    PARITY_TOLERANCE,
    check_onnx,
    export_onnx,
    parity_ids,
)

DEFAULT_MODEL = "data/model/model.pt"
PROG = "seqlm export"


def checkpoint_of(path: Path) -> Path | None:
    """The ``.pt`` checkpoint ``path`` names (the file, or a folder's ``model.pt``), or None when
    it names portable files (a ``.safetensors`` file, its ``config.json``, or their folder)."""
    if path.is_dir():
        if (path / "model.pt").is_file():
            return path / "model.pt"
        if (path / SAFETENSORS_NAME).is_file():
            return None
        raise DataError(f"the folder {str(path)!r} holds neither model.pt nor {SAFETENSORS_NAME}")
    if not path.exists():
        raise DataError(f"{str(path)!r} does not exist; run the train stage first")
    if path.suffix.lower() in (".safetensors", ".json"):
        return None
    return path


def load_model(
    path: Path, checkpoint: Path | None
) -> tuple[NeuralLM, CheckpointInfo, Vocab, dict[str, str]]:
    """The model, what it says of itself, its vocabulary and text reading, from either form."""
    if checkpoint is not None:
        return load_standalone(checkpoint)
    return load_portable(path)


def onnx_with_parity(
    model: NeuralLM, info: CheckpointInfo, out: Path, opset: int | None
) -> tuple[float, int]:
    """Export ``model`` to ``out`` and check it on the fixed input; ``out`` is replaced only when
    the graph's log-probabilities are within :data:`PARITY_TOLERANCE` of torch's. Returns the
    largest difference and the number of ids it was measured on."""
    length = PARITY_LENGTH
    if isinstance(model, TransformerLM):
        length = min(length, model.context)
    ids = parity_ids(info.vocab_size, info.bos_id, length)
    with atomic_path(out) as tmp:
        export_onnx(model, tmp, opset=opset)
        diff = check_onnx(model, tmp, ids)
        if not diff <= PARITY_TOLERANCE:
            raise DataError(
                f"the ONNX graph's log-probabilities differ from torch's by up to {diff:.3g} on "
                f"{length} ids (more than {PARITY_TOLERANCE:g}); {str(out)!r} was not written"
            )
    return diff, length


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``seqlm export [--model PATH] [--onnx OUT.onnx] [--safetensors DIR]``; returns the exit
    status (2 on bad input, a failed export or a failed parity check)."""
    ap = argparse.ArgumentParser(
        prog=prog or PROG,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="a checkpoint (.pt), a model.safetensors or its config.json, or a folder holding "
        "either (default %(default)s)",
    )
    ap.add_argument("--onnx", metavar="OUT.onnx", help="write the model as ONNX, checked")
    ap.add_argument("--safetensors", metavar="DIR", help="write model.safetensors + config.json")
    ap.add_argument(
        "--opset", type=int, default=None, help="ONNX opset (default: seqlm.neural.onnx's)"
    )
    args = ap.parse_args(argv)
    if args.onnx is None and args.safetensors is None:
        ap.error("nothing to write: give --onnx OUT.onnx, --safetensors DIR, or both")
    try:
        path = Path(args.model)
        checkpoint = checkpoint_of(path)
        model, info, vocab, text = load_model(path, checkpoint)
        if args.safetensors is not None:
            if checkpoint is not None:
                st, cfg = write_portable(checkpoint, args.safetensors)
            else:
                st, cfg = save_portable(model, info, vocab, text, args.safetensors)
            print(f"wrote {st} and {cfg}")
        if args.onnx is not None:
            diff, length = onnx_with_parity(model, info, Path(args.onnx), args.opset)
            print(
                f"wrote {args.onnx} ({info.model}): onnxruntime vs torch log-probabilities on "
                f"{length} ids, max abs difference {diff:.3g}"
            )
    except SeqlmError as e:
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
