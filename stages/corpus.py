"""Stage ``corpus``: token ids per split, data statistics, n-gram frequency tables of the train split."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from seqlm.core.atomic import remove_outputs, save_npy, write_json, write_text
from seqlm.core.stage import parser, run_stage
from seqlm.data.corpus import (
    FREQ_TABLES,
    encode_split,
    freq_path,
    freq_table_csv,
    ids_path,
    tokens_path,
)
from seqlm.data.split import SPLITS
from seqlm.data.tokens import read_token_file, stream
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
    train_stream: list[str] = []
    for split in SPLITS:
        token_lines = read_token_file(tokens_path(args.tokens_dir, split))
        data = encode_split(split, token_lines, tok, vocab)
        save_npy(ids_path(args.out_dir, split), data.ids)
        stats[split] = data.stats()
        log.info("%s: %s", split, stats[split])
        if split == "train":
            train_stream = stream(token_lines, tok)
    for n in FREQ_TABLES:
        write_text(freq_path(args.freq_dir, n), freq_table_csv(train_stream, n, tok.token))
    write_json(args.metrics, stats)


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
