"""Stage ``tokenize``: the splits' token lines: a one-file corpus is first cut into train/val/test by
line index; a pre-split corpus's files are its splits. Each split is written as a token file
(``{split}.txt``, a line of text per line) with its statistics (``{split}.json``), batch by batch.
With subword tokens the tokenizer is trained on the train split first (``tokenizer.model``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path

from seqlm.core.atomic import remove_outputs
from seqlm.core.stage import parser, run_stage
from seqlm.data.corpus import range_lines, split_ranges, tokens_path, train_tokenizer
from seqlm.data.download import corpus_files
from seqlm.data.split import SPLITS
from seqlm.data.subword import TOKENIZER_FILE, save_subword, subword_of
from seqlm.data.tokens import SUBWORD_TOKENS, stats_path, tokenize_lines, write_token_file
from seqlm.params import SINGLE, TokenizeParams, load_section

log = logging.getLogger("seqlm.stages.tokenize")
BATCH_LINES = 1 << 14  # lines tokenized at a time


def in_batches(lines: Iterator[str]) -> Iterator[list[str]]:
    """Consecutive lists of :data:`BATCH_LINES` lines (the last shorter)."""
    while batch := list(islice(lines, BATCH_LINES)):
        yield batch


def body(args: argparse.Namespace) -> None:
    paths = [tokens_path(args.out_dir, s) for s in SPLITS]
    tokenizer = Path(args.out_dir) / TOKENIZER_FILE
    remove_outputs(*paths, *map(stats_path, paths), tokenizer)
    params = load_section(TokenizeParams, "tokenize", args.params)
    files = corpus_files(args.clean_dir)
    fractions = (params.train_fraction, params.val_fraction, params.test_fraction)
    ranges = split_ranges(files, SINGLE, fractions)  # checked before anything is written
    model = None
    if params.token in SUBWORD_TOKENS:  # bpe/unigram: trained on the train split only
        model = train_tokenizer({"train": list(range_lines(ranges["train"]))}, params)
    if model is not None:
        save_subword(model, tokenizer)
        log.info("%s tokenizer of %d pieces trained on train", params.token, params.vocab_size)
    sub = subword_of(model) if model is not None else None
    for split, lines in ranges.items():  # each split read as it is tokenized
        batches = (tokenize_lines(b, params, sub) for b in in_batches(range_lines(lines)))
        stats = write_token_file(tokens_path(args.out_dir, split), batches, params)
        log.info(
            "%s: %d lines, %d %s tokens, %d characters, %d bytes (line_end %s)",
            split,
            stats.lines,
            stats.tokens,
            params.token,
            stats.characters,
            stats.bytes,
            params.line_end,
        )


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--clean-dir", required=True, help="the clean stage's folder")
    ap.add_argument("--out-dir", required=True, help="folder for {train,val,test}.txt and .json")
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
