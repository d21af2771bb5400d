"""The published Penn Treebank figure: interpolated modified Kneser-Ney, order 5, <eos> counted.

Mikolov et al. (2011), "Empirical Evaluation and Combination of Advanced Language Modeling
Techniques", report a test perplexity of 141.2 for KN5 on PTB. The files come from the offline
mirror (``SEQLM_MIRROR``, as CI sets it) through the ptb preset's download section.
"""

from pathlib import Path

import pytest

from seqlm.data.corpus import prepare_text
from seqlm.data.download import fetch_corpus
from seqlm.ngram.baseline import run_baseline
from seqlm.ops.presets import compose_params
from seqlm.params import (
    CleanParams,
    DownloadParams,
    GenerateParams,
    NgramParams,
    TokenizeParams,
    VocabParams,
    build,
)

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED_KN5_TEST = 141.2


@pytest.fixture(scope="module")
def ptb(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ptb")
    params = compose_params(["dataset=ptb"], tmp / "params.yaml", ROOT / "conf")
    files = fetch_corpus(build(DownloadParams, "download", params["download"]), tmp / "raw")
    data = prepare_text(
        {name: path.read_bytes() for name, path in files.items()},
        build(TokenizeParams, "tokenize", params["tokenize"]),
        build(VocabParams, "vocab", params["vocab"]),
        build(CleanParams, "clean", params["clean"]),
    )
    return params, data


def test_ptb_has_the_published_vocabulary_and_token_counts(ptb):
    _, data = ptb
    assert len(data.vocab) == 10_001  # 10,000 words with <unk> and <eos>, plus <bos>
    assert "<eos>" in data.vocab and data.vocab.index("<unk>") == 0
    assert {s: d.ids.size for s, d in data.splits.items()} == {
        "train": 929_589,
        "val": 73_760,
        "test": 82_430,
    }
    assert data.splits["train"].oov == data.vocab.counts[0] == 45_020  # PTB's own <unk>s


def test_kn5_on_ptb_is_within_one_percent_of_the_published_141_2(ptb):
    params, data = ptb
    ngram = build(NgramParams, "ngram", params["ngram"])
    assert ngram.order == 5
    gen = GenerateParams(prefixes=("the",), length=5)
    result = run_baseline(ngram, gen, data.vocab, data.splits, "word")
    test = result.scores["test"].perplexity
    print(f"KN5 test perplexity: ours {test:.2f}, published {PUBLISHED_KN5_TEST}")
    assert abs(test / PUBLISHED_KN5_TEST - 1) < 0.01
