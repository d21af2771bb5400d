"""Mixtures of any number of members, weights fitted by EM (seqlm.mixture)."""

from __future__ import annotations

import numpy as np
import pytest

from seqlm.core.errors import DataError
from seqlm.mixture import apply_mixture, em_weights, fit_mixture, member_matrix, mixture_logprobs


def random_members(m: int, n: int, seed: int) -> np.ndarray:
    """``(m, n)`` log-probabilities of members of unequal quality."""
    rng = np.random.default_rng(seed)
    p = rng.beta(np.arange(1, m + 1)[:, None] * 0.7, 2.0, size=(m, n))
    return np.log(np.clip(p, 1e-12, 1.0))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("m", [2, 3, 5])
def test_em_weights_sum_to_one_and_beat_every_member(seed: int, m: int) -> None:
    lp = random_members(m, 400, seed)
    w = em_weights(lp)
    assert w.shape == (m,) and (w >= 0).all()
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    mixed = mixture_logprobs(lp, w).sum()
    assert all(mixed >= row.sum() - 1e-9 for row in lp)
    # the optimum: no nearby point of the simplex does better
    rng = np.random.default_rng(seed)
    for _ in range(20):
        other = np.clip(w + rng.normal(0, 0.01, m), 0, None)
        assert mixture_logprobs(lp, other / other.sum()).sum() <= mixed + 1e-6


def test_a_mixture_is_the_weighted_average_of_probabilities() -> None:
    lp = np.log([[0.2, 0.6], [0.4, 0.2]])
    mixed = mixture_logprobs(lp, np.array([0.25, 0.75]))
    assert np.exp(mixed) == pytest.approx([0.25 * 0.2 + 0.75 * 0.4, 0.25 * 0.6 + 0.75 * 0.2])
    np.testing.assert_allclose(mixture_logprobs(lp, np.array([1.0, 0.0])), lp[0])
    for bad in ([1.5, -0.5], [0.5, 0.4]):
        with pytest.raises(ValueError, match="weights >= 0 summing to 1"):
            mixture_logprobs(lp, np.array(bad))


def test_two_members_get_the_weight_that_maximises_the_likelihood() -> None:
    # d/dw of log(.1 + .8w) + log(.5 - .4w) is zero at .8(.5 - .4w) = .4(.1 + .8w): w = .5625
    lp = np.log([[0.9, 0.1], [0.1, 0.5]])
    assert em_weights(lp)[0] == pytest.approx(0.5625, abs=1e-4)
    assert em_weights(lp[::-1])[1] == pytest.approx(0.5625, abs=1e-4)
    lp = random_members(2, 500, 7)
    grid = np.linspace(0, 1, 1001)
    best = grid[np.argmax([mixture_logprobs(lp, np.array([g, 1 - g])).sum() for g in grid])]
    assert em_weights(lp)[0] == pytest.approx(best, abs=2e-3)
    # a member worse on every target gets no weight
    assert em_weights(np.log([[0.1, 0.1], [0.9, 0.9]])).tolist() == [0.0, 1.0]


def test_float32_members_are_mixed_in_float64() -> None:
    a, b = np.log(np.array([0.2, 0.6], np.float32)), np.log(np.array([0.4, 0.2], np.float32))
    mixed = apply_mixture({"a": a, "b": b}, {"a": 0.25, "b": 0.75})
    exact = np.logaddexp(np.log(0.25) + a.astype(np.float64), np.log(0.75) + b.astype(np.float64))
    assert mixed.dtype == np.float64
    np.testing.assert_allclose(mixed, exact, rtol=1e-15)


def test_degenerate_members() -> None:
    lp = random_members(3, 100, 1)
    assert em_weights(lp[:1]).tolist() == [1.0]  # one member
    same = np.stack([lp[0], lp[0], lp[0]])  # identical members: any split is optimal; EM stays
    np.testing.assert_allclose(em_weights(same), [1 / 3] * 3)
    dominated = np.stack([lp[0], lp[0] - 1.0])  # a member worse on every target gets nothing
    assert em_weights(dominated)[1] < 1e-6
    twins = np.stack([lp[1], lp[1], lp[1] - 0.5])  # twins share the weight, the worse one gets 0
    w = em_weights(twins)
    assert w[0] == pytest.approx(0.5, abs=1e-6) and w[1] == pytest.approx(0.5, abs=1e-6)
    assert w[2] == 0.0


def test_a_member_with_zero_probability_somewhere_is_handled_or_refused() -> None:
    lp = random_members(2, 50, 3)
    lp[1, 10] = -np.inf  # the second member calls target 10 impossible
    names, matrix = member_matrix({"a": lp[0], "b": lp[1]})
    w = em_weights(matrix)
    assert np.isfinite(mixture_logprobs(matrix, w)).all() and w[0] > 0
    lp[0, 10] = -np.inf  # now every member does: no mixture can score it
    with pytest.raises(DataError, match="target 10"):
        member_matrix({"a": lp[0], "b": lp[1]})


@pytest.mark.parametrize(
    "members, message",
    [
        ({}, "at least one"),
        ({"a": np.zeros(3), "b": np.zeros(4)}, "same non-empty run"),
        ({"a": np.array([-1.0, np.nan])}, "NaN or above 0"),
        ({"a": np.array([-1.0, 0.5])}, "NaN or above 0"),
    ],
)
def test_members_that_do_not_score_the_same_targets_are_refused(members, message) -> None:
    with pytest.raises(DataError, match=message):
        fit_mixture(members)


def test_fit_then_apply_by_name() -> None:
    lp = random_members(3, 200, 5)
    val = {"x": lp[0], "y": lp[1], "z": lp[2]}
    weights = fit_mixture(val)
    assert list(weights) == ["x", "y", "z"] and sum(weights.values()) == pytest.approx(1.0)
    reordered = {"z": lp[2], "x": lp[0], "y": lp[1]}
    np.testing.assert_allclose(apply_mixture(reordered, weights), apply_mixture(val, weights))
    with pytest.raises(DataError, match="fitted on members"):
        apply_mixture({"x": lp[0]}, weights)


def test_rows_of_very_different_scales_are_summed_without_underflow() -> None:
    # column 0 is all near -1000: a shift by the whole matrix's maximum would underflow to -inf
    lp = np.array([[-1000.0, -1.0], [-1001.0, -2.0]])
    mixed = mixture_logprobs(lp, np.array([0.5, 0.5]))
    expected = [
        np.logaddexp(-1000.0, -1001.0) + np.log(0.5),
        np.logaddexp(-1.0, -2.0) + np.log(0.5),
    ]
    np.testing.assert_allclose(mixed, expected, rtol=1e-12)


def test_a_member_with_probability_zero_everywhere_gets_no_weight_and_no_warning() -> None:
    import warnings

    lp = np.array([[-np.inf, -np.inf, -np.inf], np.log([0.5, 0.25, 0.5])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # log(0) must be asked for, not warned about
        w = em_weights(lp)
        mixed = mixture_logprobs(lp, w)
    assert w.tolist() == [0.0, 1.0]
    np.testing.assert_allclose(mixed, lp[1])


def test_when_em_stops_short_the_best_single_member_is_kept() -> None:
    lp = np.log([[0.9, 0.8, 0.9], [0.1, 0.2, 0.1]])  # the first member is better on every target
    assert em_weights(lp, max_iter=1).tolist() == [1.0, 0.0]  # one EM step is not enough
    assert em_weights(lp[::-1], max_iter=1).tolist() == [0.0, 1.0]  # the best is the second


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({}, "a mixture needs at least one member"),
        ({"a": np.full((2, 2), -1.0)}, "same non-empty run of targets"),
        ({"a": np.array([])}, "same non-empty run of targets"),
        ({"a": np.log([0.5]), "b": np.array([0.5])}, "member 'b' has a log-probability"),
        ({"a": np.array([-np.inf]), "b": np.array([-np.inf])}, "no mixture can score it"),
    ],
)
def test_what_cannot_be_mixed_is_refused_saying_why(members, message) -> None:
    with pytest.raises(DataError, match=message):
        member_matrix(members)


def test_a_single_target_can_be_mixed() -> None:
    weights = fit_mixture({"a": np.log([0.5]), "b": np.log([0.25])})
    assert weights == {"a": 1.0, "b": 0.0}


def test_a_wrong_number_of_weights_is_refused_naming_how_many() -> None:
    lp = np.log(np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="need 2 weights >= 0 summing to 1"):
        mixture_logprobs(lp, np.array([1.0]))
