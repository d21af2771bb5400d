"""Stage ``vocab``: build the vocabulary from the train split only (subword tokens: and every piece
of the tokenizer trained on it)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from seqlm.core.atomic import remove_outputs
from seqlm.core.stage import parser, run_stage
from seqlm.data.corpus import tokens_path
from seqlm.data.subword import TOKENIZER_FILE, load_subword, subword_vocab
from seqlm.data.tokens import iter_line_batches, stream_batches
from seqlm.data.vocab import count_tokens, save_vocab, vocab_from_counts
from seqlm.params import SUBWORD_TOKENS, TokenizeParams, VocabParams, load_section

log = logging.getLogger("seqlm.stages.vocab")


def body(args: argparse.Namespace) -> None:
    remove_outputs(args.out)
    params = load_section(VocabParams, "vocab", args.params)
    tok = load_section(TokenizeParams, "tokenize", args.params)
    batches = iter_line_batches(tokens_path(args.tokens_dir, "train"), tok.token)
    counts = count_tokens(stream_batches(batches, tok))
    if tok.token in SUBWORD_TOKENS:  # every piece of the tokenizer, seen in train or not
        model = load_subword(Path(args.tokens_dir) / TOKENIZER_FILE)
        vocab = subword_vocab(counts, model, params)
    else:
        vocab = vocab_from_counts(counts, params)
    save_vocab(vocab, args.out)
    log.info(
        "vocabulary of %d entries from %d train tokens (min_freq %d, max_size %s); "
        "%d train tokens are <unk>",
        len(vocab),
        counts.total(),
        params.min_freq,
        params.max_size,
        vocab.counts[0],
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--tokens-dir", required=True, help="the tokenize stage's folder")
    ap.add_argument("--out", required=True, help="vocabulary TSV")
    return run_stage(body, ap, argv)


if __name__ == "__main__":
    sys.exit(main())
