"""The n-gram baseline on the real Time Machine against published and expected figures.

Needs the corpus through ``SEQLM_MIRROR``: without it the ``real_corpus`` fixture fails (no skip).
"""

import math

import numpy as np
import pytest

from seqlm.data.corpus import prepare_text
from seqlm.ngram import (
    SentenceVocab,
    count_stream,
    fit_ngram,
    fit_sentence_model,
    sentence_logprobs,
    write_arpa,
)
from seqlm.perplexity import score_split

# KenLM lmplz -o 5 --discount_fallback on the train-split lines (characters separated by spaces, the
# space written "_"), test-split perplexity per character with <s> as context and </s> not scored.
KENLM_TEST_PERPLEXITY = 4.1667


@pytest.fixture(scope="module")
def time_machine(real_corpus):
    """The pipeline's character data, built in memory exactly as the stages build it."""
    data = prepare_text(real_corpus.read_bytes())  # the default params: char tokens, 90/5/5
    ids = {s: d.ids for s, d in data.splits.items()}
    chars = {s: d.characters for s, d in data.splits.items()}
    return data.vocab, data.token_lines, ids, chars


def test_sentence_mode_matches_kenlm_published_test_perplexity(time_machine):
    vocab, token_lines, _, _ = time_machine
    assert len(vocab) == 29
    model = fit_sentence_model(token_lines["train"], vocab, 5)
    lp = sentence_logprobs(model, vocab, token_lines["test"], include_eos=False)
    assert lp.size == sum(map(len, token_lines["test"]))
    perplexity = math.exp(-lp.mean())
    assert perplexity == pytest.approx(KENLM_TEST_PERPLEXITY, rel=0.005)


def test_kenlm_reads_the_real_5gram_and_agrees(time_machine, tmp_path):
    import kenlm  # pinned in the dev lock: without it this fails, never skips silently

    vocab, token_lines, _, _ = time_machine
    model = fit_sentence_model(token_lines["train"], vocab, 5)
    path = write_arpa(model, SentenceVocab(vocab).arpa_names(), tmp_path / "tm5.arpa")
    klm = kenlm.Model(str(path))
    held_out = token_lines["test"][:40]
    ours = sentence_logprobs(model, vocab, held_out) / math.log(10)
    theirs = np.array(
        [
            s
            for line in held_out
            for s, _, _ in klm.full_scores(" ".join("_" if c == " " else c for c in line))
        ]
    )
    np.testing.assert_allclose(theirs, ours, atol=1e-4)


def test_stream_mode_char_models_train_below_val_and_kn_beats_laplace(time_machine):
    vocab, _, ids, chars = time_machine
    counts = count_stream(ids["train"], len(vocab), 7, vocab.id_of("<bos>"))

    def ppl(model, split):
        return score_split(model.target_logprobs(ids[split]), chars[split], 0).perplexity

    kn = fit_ngram(counts, 7, "kneser_ney")
    laplace = fit_ngram(counts, 7, "laplace")
    assert ppl(kn, "train") < ppl(kn, "val")
    assert ppl(laplace, "train") < ppl(laplace, "val")
    assert ppl(kn, "val") < 3.7 < ppl(laplace, "val")
    # order matters: the 7-gram beats the trigram by far
    assert ppl(kn, "val") < 0.7 * ppl(fit_ngram(counts, 3), "val")
