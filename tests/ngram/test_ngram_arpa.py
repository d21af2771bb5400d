"""Sentence mode and the ARPA export: KenLM (or any ARPA reader) gives back our probabilities."""

import math

import numpy as np
import pytest

from seqlm.core.errors import DataError
from seqlm.data.corpus import prepare_text
from seqlm.data.vocab import Vocab
from seqlm.ngram import (
    SentenceVocab,
    fit_sentence_model,
    read_arpa,
    sentence_logprobs,
    write_arpa,
)
from seqlm.params import TokenizeParams


def sentence_data(text, token):
    """The pipeline's data by line (60/20/20): vocab, train token lines, val + test token lines."""
    split = TokenizeParams(token=token, train_fraction=0.6, val_fraction=0.2, test_fraction=0.2)
    data = prepare_text(text, split)
    return data.vocab, data.token_lines["train"], data.token_lines["val"] + data.token_lines["test"]


def arpa_words(line, token):
    """A line as KenLM's text input spells it: tokens between spaces, the space char as ``_``."""
    return ["_" if t == " " else t for t in line] if token == "char" else list(line)


@pytest.fixture(params=[("char", 4), ("word", 3)], ids=["char-4gram", "word-3gram"])
def fitted(request, tiny_text, tmp_path):
    token, order = request.param
    vocab, train, held_out = sentence_data(tiny_text, token)
    model = fit_sentence_model(train, vocab, order)
    path = write_arpa(model, SentenceVocab(vocab).arpa_names(), tmp_path / "model.arpa")
    return token, vocab, model, held_out, path


def test_kenlm_gives_our_log_probabilities_on_held_out_sentences(fitted):
    import kenlm  # pinned in the dev lock: without it this fails, never skips silently

    token, vocab, model, held_out, path = fitted
    klm = kenlm.Model(str(path))
    assert klm.order == model.order
    ours = sentence_logprobs(model, vocab, held_out) / math.log(10)  # </s> included
    theirs = np.array(
        [
            score
            for line in held_out
            for score, _, _ in klm.full_scores(
                " ".join(arpa_words(line, token)), bos=True, eos=True
            )
        ]
    )
    assert theirs.shape == ours.shape
    np.testing.assert_allclose(theirs, ours, atol=1e-4)


def test_arpa_round_trip_gives_the_same_log_probabilities(fitted):
    token, vocab, model, held_out, path = fitted
    arpa = read_arpa(path)
    assert arpa.order == model.order
    assert [len(g) for g in arpa.grams] == [model.counts.rows(k) for k in range(1, model.order + 1)]
    ours = sentence_logprobs(model, vocab, held_out) / math.log(10)
    theirs = np.concatenate([arpa.score(arpa_words(line, token)) for line in held_out])
    np.testing.assert_allclose(theirs, ours, atol=1e-6)


def test_arpa_holds_interpolated_probabilities_and_gammas_as_backoffs(fitted):
    _, vocab, model, _, path = fitted
    arpa = read_arpa(path)
    sv = SentenceVocab(vocab)
    names = sv.arpa_names()
    assert arpa.grams[0]["<s>",][0] == -99.0
    assert math.isclose(
        arpa.grams[0]["<s>",][1], math.log10(model.backoff[0][sv.bos_id]), abs_tol=1e-6
    )
    for w in range(sv.size):
        if w != sv.bos_id:
            expected = math.log10(model.distribution([])[w])
            assert math.isclose(arpa.grams[0][names[w],][0], expected, abs_tol=1e-6)
    # every bigram's probability is p(w | its first token); its backoff is that bigram's gamma
    for row in range(model.counts.rows(2)):
        h, w = int(model.counts.prefix(2)[row]), int(model.counts.last(2)[row])
        logp, backoff = arpa.grams[1][names[h], names[w]]
        assert math.isclose(logp, math.log10(model.distribution([h])[w]), abs_tol=1e-6)
        if model.order > 2:
            assert math.isclose(backoff, math.log10(model.backoff[1][row]), abs_tol=1e-6)


def test_sentence_mode_resets_the_context_on_every_line(tiny_text):
    vocab, train, held_out = sentence_data(tiny_text, "char")
    model = fit_sentence_model(train, vocab, 5)
    both = sentence_logprobs(model, vocab, held_out[:2])
    apart = np.concatenate([sentence_logprobs(model, vocab, [line]) for line in held_out[:2]])
    np.testing.assert_array_equal(both, apart)
    without_eos = sentence_logprobs(model, vocab, held_out[:2], include_eos=False)
    assert without_eos.size == both.size - 2 == sum(map(len, held_out[:2]))


def test_sentence_distributions_sum_to_one_and_never_predict_the_begin_marker(tiny_text):
    vocab, train, _ = sentence_data(tiny_text, "char")
    model = fit_sentence_model(train, vocab, 4)
    sv = SentenceVocab(vocab)
    rng = np.random.default_rng(0)
    for _ in range(30):
        context = [sv.bos_id, *rng.integers(0, sv.size, size=int(rng.integers(0, 5)))]
        context = [c for i, c in enumerate(context) if i == 0 or c != sv.bos_id]
        p = model.distribution(context)
        assert p[sv.bos_id] == 0.0 and abs(p.sum() - 1.0) < 1e-9


def test_arpa_names_spell_markers_and_the_space_like_kenlm_input():
    vocab = Vocab(("<unk>", "<bos>", " ", "a"), (0, 0, 3, 4))
    assert SentenceVocab(vocab).arpa_names() == ["<unk>", "<s>", "_", "a", "</s>"]
    with_eos = Vocab(("<unk>", "<bos>", "<eos>", "a"), (0, 0, 0, 4))
    sv = SentenceVocab(with_eos)
    assert (sv.eos_id, sv.size) == (2, 4)
    with pytest.raises(DataError, match="both be written '_'"):
        SentenceVocab(Vocab(("<unk>", "<bos>", " ", "_"), (0, 0, 1, 1))).arpa_names()
    with pytest.raises(DataError, match="add it to vocab.reserved"):
        SentenceVocab(Vocab(("<unk>", "a"), (0, 1)))


def test_write_arpa_leaves_no_file_when_names_do_not_fit(tiny_text, tmp_path):
    vocab, train, _ = sentence_data(tiny_text, "char")
    model = fit_sentence_model(train, vocab, 2)
    with pytest.raises(DataError, match="one name per id"):
        write_arpa(model, ["a", "b"], tmp_path / "m.arpa")
    assert list(tmp_path.iterdir()) == []
