"""Stage ``corpus``: token ids per split, data statistics, n-gram frequency tables of the train split.

Each split is encoded batch by batch into a compact ``.npy`` (:mod:`seqlm.data.ids`); the frequency
tables are counted over the train stream in pieces (:mod:`seqlm.data.freq`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from seqlm.core.atomic import remove_outputs, write_json, write_text
from seqlm.core.stage import parser, run_stage
from seqlm.core.workers import worker_count
from seqlm.data.corpus import FREQ_TABLES, encode_split_file, freq_path, ids_path
from seqlm.data.freq import FreqCounter
from seqlm.data.split import SPLITS
from seqlm.data.vocab import load_vocab
from seqlm.params import TokenizeParams, load_section

log = logging.getLogger("seqlm.stages.corpus")


def body(args: argparse.Namespace) -> None:
    outputs = [ids_path(args.out_dir, s) for s in SPLITS]
    outputs += [freq_path(args.freq_dir, n) for n in FREQ_TABLES]
    remove_outputs(args.metrics, *outputs)
    tok = load_section(TokenizeParams, "tokenize", args.params)
    vocab = load_vocab(args.vocab)
    stats: dict[str, object] = {"token": tok.token, "vocab_size": len(vocab)}
    try:  # all or nothing
        freq = FreqCounter(tok.token, threads=worker_count())
        for split in SPLITS:
            data, names = encode_split_file(
                split,
                args.tokens_dir,
                tok,
                vocab,
                ids_path(args.out_dir, split),
                freq if split == "train" else None,  # the tables count the train split only
            )
            stats[split] = data.stats()
            log.info("%s: %s (ids as %s)", split, stats[split], data.ids.dtype)
            if split == "train":
                tables = freq.tables_csv(names)
        for n in FREQ_TABLES:
            write_text(freq_path(args.freq_dir, n), tables[n])
        write_json(args.metrics, stats)
    except BaseException:
        remove_outputs(args.metrics, *outputs)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--tokens-dir", required=True, help="the tokenize stage's folder")
    ap.add_argument("--vocab", required=True, help="vocabulary TSV")
    ap.add_argument("--out-dir", required=True, help="folder for {train,val,test}.npy token ids")
    ap.add_argument(
        "--freq-dir", required=True, help="folder for the train n-gram frequency tables"
    )
    ap.add_argument("--metrics", required=True, help="data statistics JSON")
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
