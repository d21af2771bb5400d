"""``seqlm generate``: continue a prompt with a trained model, the tokens streamed as they come.

The prompt is read like the model's corpus (cleaned and tokenized by the model's own settings).
Sampling (the default) draws each token with ``--temperature``, ``--top-k`` and ``--top-p`` from a
generator seeded by ``--seed``: the same seed gives the same text. ``--beam B`` searches for the
most likely continuation instead (beam search; ``--beam 1`` is greedy decoding).

    seqlm generate --prompt "the time traveller" --max-tokens 200
    seqlm generate --ngram data/ngram --prompt "the time" --beam 5
    seqlm generate --ensemble data/ensemble.json --prompt-file prompt.txt --top-p 0.9 --seed 3
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from seqlm.core.errors import SeqlmError
from seqlm.core.threads import limit_threads
from seqlm.lm import load
from seqlm.lm.text import as_text
from seqlm.ops.score import DEFAULT_MODEL, read_input
from seqlm.sampling import read_prefix


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """``seqlm generate --prompt TEXT``; returns the exit status (2 on bad input)."""
    ap = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--model", help=f"a neural model (default {DEFAULT_MODEL})")
    which.add_argument("--ngram", help="an n-gram model (data/ngram, model.npz or an .arpa)")
    which.add_argument("--ensemble", help="an ensemble (data/ensemble.json)")
    prompt = ap.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", default="", help="the text to continue (default: none)")
    prompt.add_argument("--prompt-file", help="read the prompt from this file (- for stdin)")
    ap.add_argument("--max-tokens", type=int, default=100, help="tokens to generate (100)")
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (1)")
    ap.add_argument("--top-k", type=int, default=0, help="sample from the k most likely (0: all)")
    ap.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1: all)")
    ap.add_argument("--beam", type=int, default=0, help="beam search width (0: sample; 1: greedy)")
    ap.add_argument("--seed", type=int, default=0, help="the sampling seed (0)")
    ap.add_argument("--no-prompt", action="store_true", help="print only the continuation")
    ap.add_argument("--device", default="cpu", help="torch device for neural models (default cpu)")
    args = ap.parse_args(argv)
    limit_threads()  # SEQLM_THREADS / OMP_NUM_THREADS, as the stages do
    try:
        text = args.prompt
        if args.prompt_file:
            text = as_text(read_input(args.prompt_file), args.prompt_file)
        lm = load(args.model or args.ngram or args.ensemble or DEFAULT_MODEL, args.device)
        tokens = lm.generate(
            text,
            args.max_tokens,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            beam=args.beam,
            seed=args.seed,
        )
        if not args.no_prompt:
            sys.stdout.write(read_prefix(text, lm.fmt, lm.vocab).text)
        for piece in tokens:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
    except (SeqlmError, OSError) as e:
        print(f"{ap.prog}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
