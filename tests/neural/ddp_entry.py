"""Train a tiny model for a few optimizer steps, in one process or as one of the processes
``torchrun`` starts; rank 0 writes the checkpoint (the best evaluation's weights), the weights
after the last step and the training figures as JSON.

    python tests/neural/ddp_entry.py OUT_DIR MODEL STEPS
    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/neural/ddp_entry.py ...

Without a STATE_DIR the model is dropout-free and validated once, after STEPS steps
(tests/neural/test_distributed.py runs one and two processes and compares the weights). With
``STATE_DIR CRASH_AT`` it has dropout, validates every 3 steps, keeps a resumable state in
STATE_DIR and dies at once (exit status 3) at step CRASH_AT (0: never), as a killed run would.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from pipeline_support import TINY_TEXT
from seqlm.neural.distributed import leave, world_from_env
from seqlm.neural.loop import train
from seqlm.neural.records import TIMINGS
from seqlm.neural.resume import fingerprint, open_resume
from seqlm.params import TrainParams
from tiny_pipeline import NO_DROPOUT, TINY_NET, tiny_data

PARAMS = TrainParams(
    batch_size=4, num_steps=8, epochs=1, lr=0.01, warmup_steps=2, threads=1, device="cpu"
)


def main(out_dir: str, model: str, steps: int, state_dir: str = "", crash_at: int = 0) -> None:
    data = tiny_data(TINY_TEXT * 4)
    out = Path(out_dir)
    world = world_from_env()
    net, params, resume = NO_DROPOUT, PARAMS, None
    if state_dir:
        net, params = TINY_NET, PARAMS.replace(eval_every=3, epochs=2)
        splits = data.splits["train"], data.splits["val"]
        current = fingerprint(model, net, params, data.vocab, *splits, world.size)
        resume = open_resume(state_dir, current, world.is_main)
    last: dict[str, torch.Tensor] = {}

    def on_step(step: int, trained: torch.nn.Module) -> bool:
        if step == crash_at:
            os._exit(3)
        last.update({k: v.detach().clone() for k, v in trained.state_dict().items()})
        return step == steps

    result = train(
        model,
        net,
        params,
        data.vocab,
        data.splits["train"],
        data.splits["val"],
        checkpoint_path=out / "model.pt",
        on_step=on_step,
        resume=resume,
    )
    if world.is_main:
        record = result.history[-1]
        figures = {
            "train_perplexity": record.train_perplexity,
            "val_perplexity": record.val_perplexity,
            "stopped": result.stopped,
            "steps": result.steps,
            "history": [
                {k: v for k, v in asdict(r).items() if k not in TIMINGS} for r in result.history
            ],
        }
        (out / "result.json").write_text(json.dumps(figures))
        torch.save(last, out / "last.pt")
    leave()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:5], *map(int, sys.argv[5:6]))
