"""Mixtures of any number of members, weights fitted by EM (seqlm.mixture)."""

from __future__ import annotations

import numpy as np
import pytest

from seqlm.core.errors import DataError
from seqlm.mixture import (
    PRUNE,
    apply_mixture,
    em_weights,
    fit_mixture,
    member_matrix,
    mixture_logprobs,
)


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


def test_a_target_the_weighted_members_cannot_score_is_minus_infinity_without_a_warning() -> None:
    import warnings

    # only the second member can score target 0, and it has no weight: log 0, asked for
    lp = np.array([[-np.inf, np.log(0.5)], [np.log(0.5), np.log(0.5)]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mixed = mixture_logprobs(lp, np.array([1.0, 0.0]))
    assert mixed[0] == -np.inf and mixed[1] == pytest.approx(np.log(0.5), abs=1e-15)


@pytest.mark.parametrize("n", [20, 200])
def test_weights_sum_to_one_to_the_last_bits_even_far_from_log_probability_zero(n: int) -> None:
    # near -1e4 the log-sum-exp of a column rounds by ~1e-12, so the responsibilities of a target
    # do not sum to 1 exactly: each M step renormalises the weights
    for seed in range(10):
        w = em_weights(random_members(3, n, seed) - 1e4)
        assert w.sum() == pytest.approx(1.0, abs=1e-15), seed


def test_an_iteration_that_gains_exactly_tol_per_target_is_not_convergence() -> None:
    lp = np.log([[0.9, 0.1], [0.1, 0.5]])  # 2 targets: tol * 2 is exact
    one, two = em_weights(lp, max_iter=1), em_weights(lp, max_iter=2)
    assert one.sum() == 1.0 and not np.array_equal(one, two)
    gain = mixture_logprobs(lp, one).sum() - mixture_logprobs(lp, np.full(2, 0.5)).sum()
    # the second step gains less than the first: EM stops after it
    assert mixture_logprobs(lp, two).sum() - mixture_logprobs(lp, one).sum() < gain
    np.testing.assert_array_equal(em_weights(lp, tol=gain / 2), two)
    np.testing.assert_array_equal(em_weights(lp, tol=np.nextafter(gain / 2, 1.0)), one)


@pytest.mark.parametrize("tol", [1e-3, 1e-4])
def test_tol_is_per_target_so_repeating_the_targets_changes_nothing(tol: float) -> None:
    lp = random_members(3, 50, 1)
    np.testing.assert_allclose(em_weights(np.tile(lp, 8), tol=tol), em_weights(lp, tol=tol))
    # a loose tol stops EM early: the repeat gives the same weights, not those of a stricter tol
    assert not np.allclose(em_weights(lp, tol=tol), em_weights(lp, tol=tol / 64), atol=1e-9)


def test_a_weight_of_exactly_prune_is_not_dropped() -> None:
    # no EM step: a million members keep 1 / 10**6, which is PRUNE itself, only weights below go
    lp = np.full((10**6, 1), np.log(0.5))
    w = em_weights(lp, max_iter=0)
    assert (w == PRUNE).all()


def test_identical_members_certain_of_every_target_keep_their_split() -> None:
    # every log-likelihood is 0: a single member only ties the mixture, no reason to drop it
    assert em_weights(np.zeros((2, 3))).tolist() == [0.5, 0.5]


def test_a_member_better_than_the_mixture_by_far_less_than_tol_but_more_than_rounding_is_kept() -> (
    None
):
    lp = np.log(np.full(4, 0.999))  # log-likelihoods near -0.004: rounding is ~1e-18
    lp = np.stack([lp, lp - 1e-11])  # EM's first step gains far less than tol and stops
    assert em_weights(lp).tolist() == [1.0, 0.0]
    assert em_weights(lp[::-1]).tolist() == [0.0, 1.0]


def test_float32_twins_share_the_weight_as_their_float64_values_do() -> None:
    # a float32 sum of the members' log-probabilities would round above the mixture's
    a = np.log(np.random.default_rng(0).uniform(0.01, 1, 1000)).astype(np.float32)
    assert fit_mixture({"a": a, "b": a.copy()}) == {"a": 0.5, "b": 0.5}
    names, lp = member_matrix({"a": a, "b": a})
    assert lp.dtype == np.float64
    np.testing.assert_array_equal(lp, np.stack([a, a]).astype(np.float64))


def test_float32_weights_are_used_in_float64() -> None:
    lp = np.log([[0.2, 0.6], [0.4, 0.2]])
    w = np.array([0.3, 0.7], np.float32)
    exact = np.logaddexp(np.log(float(w[0])) + lp[0], np.log(float(w[1])) + lp[1])
    np.testing.assert_allclose(mixture_logprobs(lp, w), exact, rtol=1e-15)


def test_a_log_probability_at_most_1e9_above_0_is_rounding_and_accepted() -> None:
    names, lp = member_matrix({"a": np.array([1e-9, -1.0]), "b": np.log([0.5, 0.5])})
    assert names == ["a", "b"] and lp[0, 0] == 1e-9
    # the refusal names the member above that, not one at it
    with pytest.raises(
        DataError, match="^member 'b' has a log-probability that is NaN or above 0$"
    ):
        member_matrix({"a": np.array([1e-9, -1.0]), "b": np.array([-1.0, 2e-9])})


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({}, "a mixture needs at least one member"),
        (
            {"a": np.array([-np.inf]), "b": np.array([-np.inf])},
            "target 0 has probability 0 under every member; no mixture can score it",
        ),
    ],
)
def test_the_refusals_say_exactly_why(members, message) -> None:
    with pytest.raises(DataError, match=f"^{message}$"):
        member_matrix(members)
