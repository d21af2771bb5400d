"""Train a tiny dropout-free model for a few optimizer steps, in one process or as one of the
processes ``torchrun`` starts; rank 0 writes the checkpoint (the weights after the last step) and
the training figures as JSON.

    python tests/neural/ddp_entry.py OUT_DIR MODEL STEPS
    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/neural/ddp_entry.py ...

(tests/neural/test_distributed.py runs both and compares the weights.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pipeline_support import TINY_TEXT
from seqlm.neural.distributed import leave, world_from_env
from seqlm.neural.loop import train
from seqlm.params import TrainParams
from tiny_pipeline import NO_DROPOUT, tiny_data

PARAMS = TrainParams(
    batch_size=4, num_steps=8, epochs=1, lr=0.01, warmup_steps=2, threads=1, device="cpu"
)


def main(out_dir: str, model: str, steps: int) -> None:
    data = tiny_data(TINY_TEXT * 4)
    out = Path(out_dir)

    def on_step(step: int, _model: object) -> bool:
        return step == steps

    result = train(
        model,
        NO_DROPOUT,
        PARAMS,
        data.vocab,
        data.splits["train"],
        data.splits["val"],
        checkpoint_path=out / "model.pt",
        on_step=on_step,
    )
    if world_from_env().is_main:
        record = result.history[-1]
        figures = {
            "train_perplexity": record.train_perplexity,
            "val_perplexity": record.val_perplexity,
            "stopped": result.stopped,
        }
        (out / "result.json").write_text(json.dumps(figures))
    leave()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
