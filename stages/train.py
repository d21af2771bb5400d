"""Stage ``train``: train the neural language model picked by ``model``, keep the best val epoch."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from seqlm.core.atomic import remove_outputs, write_json
from seqlm.core.stage import parser, run_stage
from seqlm.data.corpus import load_split
from seqlm.data.vocab import load_vocab
from seqlm.neural.loop import EpochRecord, train
from seqlm.neural.models import NetParams, check_net_for_model, load_model_name
from seqlm.params import TokenizeParams, TrainParams, load_section

log = logging.getLogger("seqlm.stages.train")


def body(args: argparse.Namespace) -> None:
    remove_outputs(args.checkpoint, args.metrics)
    model_name = load_model_name(args.params)
    net = load_section(NetParams, "net", args.params)
    check_net_for_model(model_name, net)
    params = load_section(TrainParams, "train", args.params)
    tok = load_section(TokenizeParams, "tokenize", args.params)
    vocab = load_vocab(args.vocab)
    train_split = load_split(args.corpus_dir, args.tokens_dir, "train", tok)
    val_split = load_split(args.corpus_dir, args.tokens_dir, "val", tok)
    log.info("model %s, net %s", model_name, net.to_dict())
    log.info(
        "train: %s; val: %s; vocabulary of %d", train_split.stats(), val_split.stats(), len(vocab)
    )

    from dvclive import Live  # slow to import: only when the stage runs

    # dvcyaml=None: DVCLive must not touch dvc.yaml (the plots are declared there by hand)
    with Live(dir=args.live_dir, dvcyaml=None, save_dvc_exp=False, report=None) as live:

        def on_epoch(record: EpochRecord) -> None:
            live.log_metric("train/perplexity", record.train_perplexity)
            live.log_metric("val/perplexity", record.val_perplexity)
            live.log_metric("val/bits_per_char", record.val_bits_per_char)
            live.log_metric("lr", record.lr)
            live.log_metric("tokens_per_second", record.tokens_per_second)
            live.next_step()

        result = train(
            model_name,
            net,
            params,
            vocab,
            train_split,
            val_split,
            checkpoint_path=args.checkpoint,
            on_epoch=on_epoch,
        )
    write_json(args.metrics, result.to_metrics())
    log.info(
        "best val perplexity %.4f (%.4f bits/char) at epoch %d of %d (stopped: %s), %.1f min, "
        "%.0f tokens/s",
        result.best_val_perplexity,
        result.best_val_bits_per_char,
        result.best_epoch,
        result.epochs,
        result.stopped,
        result.train_seconds / 60,
        result.tokens_per_second,
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--vocab", required=True, help="vocabulary TSV")
    ap.add_argument("--corpus-dir", required=True, help="the corpus stage's folder of split ids")
    ap.add_argument("--tokens-dir", required=True, help="the tokenize stage's folder")
    ap.add_argument("--checkpoint", required=True, help="where to write the best checkpoint (.pt)")
    ap.add_argument("--metrics", required=True, help="training summary JSON")
    ap.add_argument("--live-dir", required=True, help="DVCLive folder for the per-epoch curves")
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
