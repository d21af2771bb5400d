import math
import re

import numpy as np
import pytest

from seqlm.core.errors import DataError
from seqlm.data.corpus import SplitData
from seqlm.perplexity import (
    load_target_logprobs,
    logprobs_path,
    oov_count,
    save_target_logprobs,
    score_logprobs,
    score_model,
    score_split,
    score_split_parts,
)


def test_a_uniform_model_has_perplexity_equal_to_its_vocabulary_size():
    score = score_split(np.full(100, -math.log(29)), characters=100, oov=0)
    assert score.perplexity == pytest.approx(29)
    assert score.bits_per_char == pytest.approx(math.log2(29))


def test_bits_per_char_divides_by_the_running_texts_characters_not_tokens():
    # 4 word tokens covering 19 characters, each with probability 1/2
    score = score_split(np.log(np.full(4, 0.5)), characters=19, oov=1)
    assert score.nll == pytest.approx(4 * math.log(2))
    assert score.perplexity == pytest.approx(2.0)
    assert score.bits_per_char == pytest.approx(4 / 19)
    assert score.to_record() == {
        "tokens": 4,
        "nll": score.nll,
        "perplexity": score.perplexity,
        "bits_per_char": score.bits_per_char,
        "oov": 1,
        "characters": 19,
        "bits_per_byte": None,  # bytes and words not given: not counted
        "bytes": None,
        "word_perplexity": None,
        "words": None,
    }


@pytest.mark.parametrize(
    "bad", [np.array([]), np.array([-1.0, np.nan]), np.array([0.5]), np.full((2, 2), -1.0)]
)
def test_impossible_log_probabilities_are_refused(bad):
    with pytest.raises(DataError):
        score_split(bad, characters=10, oov=0)


def test_saved_log_probabilities_load_back(tmp_path):
    lp = np.log(np.array([0.1, 0.5]))
    save_target_logprobs(tmp_path, "val", lp)
    assert np.array_equal(load_target_logprobs(tmp_path, "val"), lp)
    with pytest.raises(DataError, match="no saved log-probabilities for split 'test'"):
        load_target_logprobs(tmp_path, "test")


def test_every_model_is_scored_on_a_split_through_one_function():
    split = SplitData(name="val", ids=np.array([1, 0, 2], np.int32), lines=1, characters=6, oov=1)
    seen = []

    def uniform_over_four(ids):
        seen.append(ids)
        return np.full(ids.shape, -math.log(4))

    result, lp = score_model(uniform_over_four, split)
    assert seen[0] is split.ids and lp.dtype == np.float64
    assert result == score_split(lp, characters=6, oov=1) == score_logprobs(split, lp)
    assert result.perplexity == pytest.approx(4.0) and result.tokens == 3


def test_scores_need_exactly_one_log_probability_per_target():
    split = SplitData(name="test", ids=np.array([1, 2, 3], np.int32), lines=1, characters=5, oov=0)
    with pytest.raises(
        DataError, match="2 log-probabilities .* for 3 targets; need exactly one per target$"
    ):
        score_logprobs(split, np.array([-1.0, -1.0]))


def test_log_probabilities_are_summed_in_float64_whatever_their_dtype():
    lp32 = np.full(3, -0.1, dtype=np.float32)
    score = score_split(lp32, characters=3, oov=0)
    assert score.nll == -float(lp32.astype(np.float64).sum()) != -float(lp32.sum())


@pytest.mark.parametrize("characters", [0, -3])
def test_a_split_needs_a_positive_character_count(characters):
    with pytest.raises(DataError, match=f"a positive character count, got {characters}"):
        score_split(np.array([-1.0]), characters=characters, oov=0)


def test_a_log_probability_a_rounding_error_above_zero_is_accepted_and_a_single_character_too():
    score = score_split(np.array([1e-9, -1.0]), characters=1, oov=0)
    assert score.bits_per_char == pytest.approx((1 - 1e-9) / math.log(2))


def test_the_first_impossible_target_is_named():
    with pytest.raises(DataError, match="target 2 has log-probability nan"):
        score_split(np.array([1e-9, -1.0, np.nan, 0.5]), characters=4, oov=0)


def test_a_models_log_probabilities_are_returned_in_float64():
    split = SplitData(name="val", ids=np.array([1, 2], np.int32), lines=1, characters=3, oov=0)
    result, lp = score_model(lambda ids: np.full(ids.shape, -0.5, np.float32), split)
    assert lp.dtype == np.float64 and result.nll == pytest.approx(1.0)


def test_the_oov_count_is_the_number_of_unk_targets():
    ids = np.array([0, 3, 0, 1, 3, 3])
    assert oov_count(ids) == 2
    assert oov_count(ids, unk_id=3) == 3


def test_log_probabilities_are_saved_in_float64_and_never_unpickled(tmp_path):
    path = save_target_logprobs(tmp_path, "val", np.log(np.array([0.5, 0.25], np.float32)))
    assert path == logprobs_path(tmp_path, "val") == tmp_path / "val_logprobs.npy"
    assert load_target_logprobs(tmp_path, "val").dtype == np.float64
    np.save(logprobs_path(tmp_path, "test"), np.array([{"code": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle=False"):
        load_target_logprobs(tmp_path, "test")
    missing = str(logprobs_path(tmp_path, "train"))
    with pytest.raises(DataError, match=re.escape(f"split 'train' at {missing!r}")):
        load_target_logprobs(tmp_path, "train")


@pytest.mark.parametrize("shape", [(0,), (2, 2)])
def test_log_probabilities_of_the_wrong_shape_are_refused_naming_it(shape):
    message = f"need one log-probability per target token, got shape {shape}"
    with pytest.raises(DataError, match=re.escape(message)):
        score_split(np.full(shape, -1.0), characters=4, oov=0)


def test_bits_per_byte_and_word_perplexity_divide_the_same_nll_by_bytes_and_words():
    # 4 tokens at probability 1/2 over a running text of 19 characters, 25 UTF-8 bytes and 5 words
    score = score_split(np.log(np.full(4, 0.5)), characters=19, oov=1, bytes=25, words=5)
    nll = 4 * math.log(2)
    assert score.bits_per_byte == nll / math.log(2) / 25 == 4 / 25
    assert score.word_perplexity == math.exp(nll / 5)
    assert (score.bytes, score.words, score.characters) == (25, 5, 19)
    record = score.to_record()
    assert record["bits_per_byte"] == 4 / 25 and record["bytes"] == 25 and record["words"] == 5
    assert isinstance(record["bytes"], int) and isinstance(record["words"], int)
    assert score_split(np.log(np.full(4, 0.5)), 19, 1, bytes=np.int64(25)).bytes.__class__ is int


@pytest.mark.parametrize(("name", "kw"), [("byte", {"bytes": 0}), ("word", {"words": -2})])
def test_a_split_needs_positive_byte_and_word_counts_when_given(name, kw):
    value = next(iter(kw.values()))
    with pytest.raises(DataError, match=rf"^a split needs a positive {name} count, got {value}$"):
        score_split(np.array([-1.0]), characters=3, oov=0, **kw)
    with pytest.raises(DataError, match=r"^a split needs a positive character count, got 0$"):
        score_split(np.array([-1.0]), characters=0, oov=0, bytes=3, words=1)


def test_a_split_scores_its_bytes_and_words_as_counted_by_the_data_stages():
    split = SplitData(
        name="val", ids=np.array([1, 2], np.int32), lines=1, characters=3, oov=0, bytes=4, words=2
    )
    lp = np.log(np.array([0.5, 0.25]))
    got = score_logprobs(split, lp)
    assert got == score_split(lp, characters=3, oov=0, bytes=4, words=2)
    assert got.bits_per_byte == 3 / 4 and got.word_perplexity == pytest.approx(math.sqrt(8))


def test_a_split_scored_in_parts_is_scored_as_a_whole():
    rng = np.random.default_rng(0)
    lp = np.log(rng.uniform(0.01, 1.0, size=1000))
    whole = score_split(lp, characters=1200, oov=3, bytes=1300, words=250)
    parts = score_split_parts(np.array_split(lp, 7), 1200, 3, bytes=1300, words=250)
    assert parts.tokens == whole.tokens and parts.oov == whole.oov
    for field in ("nll", "perplexity", "bits_per_char", "bits_per_byte", "word_perplexity"):
        assert getattr(parts, field) == pytest.approx(getattr(whole, field), rel=1e-12)
    one = score_split_parts([lp], 1200, 3, bytes=1300, words=250)
    assert one == whole  # one part: the same floats


def test_a_bad_value_in_a_later_part_is_named_by_its_place_in_the_split():
    parts = [np.full(5, -1.0), np.array([-1.0, np.nan])]
    with pytest.raises(DataError, match="target 6 has log-probability nan"):
        score_split_parts(parts, characters=7, oov=0)
    with pytest.raises(DataError, match=r"got shape \(0,\)"):
        score_split_parts([np.zeros(0)], characters=7, oov=0)
