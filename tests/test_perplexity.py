import math

import numpy as np
import pytest

from seqlm.core.errors import DataError
from seqlm.data.corpus import SplitData
from seqlm.perplexity import (
    best_mixture_weight,
    load_target_logprobs,
    mix_logprobs,
    save_target_logprobs,
    score_logprobs,
    score_model,
    score_split,
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
    }


@pytest.mark.parametrize("bad", [np.array([]), np.array([-1.0, np.nan]), np.array([0.5])])
def test_impossible_log_probabilities_are_refused(bad):
    with pytest.raises(DataError):
        score_split(bad, characters=10, oov=0)


def test_a_mixture_is_the_weighted_average_of_probabilities():
    lp = mix_logprobs(np.log([0.2, 0.6]), np.log([0.4, 0.2]), 0.25)
    assert np.exp(lp) == pytest.approx([0.25 * 0.2 + 0.75 * 0.4, 0.25 * 0.6 + 0.75 * 0.2])
    assert mix_logprobs(np.log([0.2]), np.log([0.4]), 1.0) == pytest.approx(np.log([0.2]))


def test_the_best_mixture_weight_maximises_likelihood():
    rng = np.random.default_rng(0)
    a, b = np.log(rng.uniform(0.05, 1, 500)), np.log(rng.uniform(0.05, 1, 500))
    w = best_mixture_weight(a, b)
    grid = np.linspace(0, 1, 1001)
    best_grid = grid[np.argmax([mix_logprobs(a, b, g).sum() for g in grid])]
    assert w == pytest.approx(best_grid, abs=2e-3)
    assert best_mixture_weight(np.log([0.9, 0.9]), np.log([0.1, 0.1])) == 1.0


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
    with pytest.raises(DataError, match="2 log-probabilities .* for 3 targets"):
        score_logprobs(split, np.array([-1.0, -1.0]))
