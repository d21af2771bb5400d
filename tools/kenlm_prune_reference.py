"""Write the KenLM reference that ``tests/ngram/test_pruning.py`` holds seqlm's pruning to.

Runs KenLM's ``lmplz --prune`` on the Time Machine's train lines (the default params' characters,
the space written ``_``, one sentence per line: what :mod:`seqlm.ngram.sentences` models) and
keeps, as JSON: the command, lmplz's discounts per order (from its log), the number of n-grams of
each order with a sha1 of their sorted list, and every 20th n-gram of each order with its log10
probability and back-off. The ARPA itself (1.4 MB) is not kept.

    SEQLM_MIRROR=../shared/data python tools/kenlm_prune_reference.py --lmplz /path/to/lmplz

KenLM has no pip build of lmplz: build it from https://github.com/kpu/kenlm (cmake, boost).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import tempfile
from pathlib import Path

import yaml

from seqlm.data.corpus import prepare_text
from seqlm.data.download import fetch_corpus
from seqlm.ngram import read_arpa
from seqlm.params import DownloadParams

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "ngram" / "reference" / "timemachine_lmplz_prune.json"
ORDER = 5
PRUNE = (0, 1, 2, 3)
EVERY = 20
DISCOUNTS = re.compile(r"^(\d+) \S+ D1=(\S+) D2=(\S+) D3\+=(\S+)$", re.M)


def arpa_line(words: tuple[str, ...]) -> str:
    return " ".join(words)


def train_text() -> str:
    """lmplz's input: the train split's lines, characters separated by spaces, space as ``_``."""
    conf = yaml.safe_load((ROOT / "conf" / "dataset" / "timemachine.yaml").read_text())
    download = DownloadParams(**conf["download"])
    files = fetch_corpus(download, Path(tempfile.mkdtemp()) / "raw")
    data = prepare_text(next(iter(files.values())).read_bytes())
    lines = data.token_lines["train"]
    return "".join(" ".join("_" if c == " " else c for c in line) + "\n" for line in lines if line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lmplz", required=True, help="KenLM's lmplz binary")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    command = [args.lmplz, "-o", str(ORDER), "--discount_fallback", "--prune", *map(str, PRUNE)]
    with tempfile.TemporaryDirectory() as tmp:
        arpa = Path(tmp) / "lmplz.arpa"
        run = subprocess.run(
            [*command, "-S", "200M", "-T", tmp],
            input=train_text().encode(),
            stdout=arpa.open("wb"),
            stderr=subprocess.PIPE,
            check=True,
        )
        model = read_arpa(arpa)
    discounts = {int(k): [float(d1), float(d2), float(d3)] for k, d1, d2, d3 in
                 DISCOUNTS.findall(run.stderr.decode())}  # fmt: skip
    orders = []
    for k, grams in enumerate(model.grams, start=1):
        names = sorted(grams)
        listing = "\n".join(arpa_line(g) for g in names)
        orders.append(
            {
                "order": k,
                "ngrams": len(names),
                "sha1": hashlib.sha1(listing.encode()).hexdigest(),
                "discounts": discounts[k],
                "sample": [[arpa_line(g), *grams[g]] for g in names[::EVERY]],
            }
        )
    record = {"command": " ".join(["lmplz", *command[1:]]), "orders": orders}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}: {[o['ngrams'] for o in orders]} n-grams")


if __name__ == "__main__":
    main()
