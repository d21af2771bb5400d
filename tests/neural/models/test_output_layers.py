"""The output layer (``net.output``) and ``net.init_range``: the adaptive softmax is an exact,
normalised distribution, its refusals are named, and a uniform initialisation bounds everything."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from small_models import CONFIGS, small_model

from seqlm.core.errors import ParamError
from seqlm.neural.evaluation import target_logprobs
from seqlm.neural.models import build_model
from seqlm.neural.models.heads import (
    SCORED_PER_CALL,
    adaptive_target_logprobs,
    gather_logprobs,
    linear_target_logprobs,
)
from seqlm.params import NetParams

WORDS = 50  # a word-sized vocabulary for these tests: head 0-4, clusters 5-19 and 20-49
ADAPTIVE = NetParams(
    embedding_size=12, hidden_size=16, output="adaptive", cutoffs=(5, 20), output_dropout=0.0
)


def adaptive_model(model: str = "lstm", **changes) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(model, ADAPTIVE.replace(**changes), WORDS, 1).eval()


@pytest.mark.parametrize("model", ["lstm", "seq2seq"])
def test_the_adaptive_softmax_gives_a_normalised_distribution_at_every_position(
    model: str,
) -> None:
    net = adaptive_model(model, window=4)
    idx = torch.randint(0, WORDS, (1, 11))
    with torch.no_grad():
        logp, _ = net.stream(idx, None)  # (1, 11, V): normalised log-probabilities
    totals = logp.double().exp().sum(-1)
    torch.testing.assert_close(totals, torch.ones_like(totals), atol=1e-5, rtol=0)
    again = torch.log_softmax(logp.double(), -1)  # a no-op on normalised log-probabilities
    torch.testing.assert_close(again, logp.double(), atol=1e-5, rtol=0)


def test_the_adaptive_target_log_probabilities_equal_a_direct_float64_computation() -> None:
    head = adaptive_model().head
    hidden = torch.randn(300, 16)
    targets = torch.arange(300) % WORDS  # every id, every cluster
    got = adaptive_target_logprobs(head, hidden, targets)
    assert got.dtype == torch.float64 and got.shape == (300,)
    direct = copy.deepcopy(head).double().log_prob(hidden.double())  # (300, V) in float64
    expected = direct.gather(1, targets[:, None]).squeeze(1)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    with torch.no_grad():  # torch's own per-target output (float32)
        torch.testing.assert_close(got.float(), head(hidden, targets).output, atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("error")  # no deprecated call, no resized output
def test_targets_in_only_some_clusters_are_each_scored_by_their_own_cluster() -> None:
    head = adaptive_model().head
    hidden = torch.randn(3, 16)
    targets = torch.tensor([0, 4, 25])  # the head, then nothing in 5-19 and one target in 20-49
    got = adaptive_target_logprobs(head, hidden, targets)
    direct = copy.deepcopy(head).double().log_prob(hidden.double())
    torch.testing.assert_close(
        got, direct.gather(1, targets[:, None]).squeeze(1), atol=1e-6, rtol=0
    )


@pytest.mark.filterwarnings("error")  # no deprecated call, no resized output
def test_a_single_cluster_adaptive_softmax_scores_every_target_exactly() -> None:
    head = adaptive_model(cutoffs=(5,)).head  # a head over ids 0-4 and one cluster, 5-49
    hidden, targets = torch.randn(WORDS, 16), torch.arange(WORDS)
    got = adaptive_target_logprobs(head, hidden, targets)
    direct = copy.deepcopy(head).double().log_prob(hidden.double())
    torch.testing.assert_close(
        got, direct.gather(1, targets[:, None]).squeeze(1), atol=1e-6, rtol=0
    )


def test_a_split_is_scored_by_the_full_adaptive_distribution_of_each_position() -> None:
    model = adaptive_model()
    ids = np.random.default_rng(0).integers(0, WORDS, size=40)
    lp = target_logprobs(model, ids, 1, chunk_size=16)
    inputs = torch.as_tensor(np.concatenate([[1], ids[:-1]]))[None]
    with torch.no_grad():
        full, _ = model.stream(inputs, None)  # (1, 40, V)
    expected = full[0].double().gather(1, torch.as_tensor(ids)[:, None]).squeeze(1).numpy()
    np.testing.assert_allclose(lp, expected, atol=1e-5)


def test_the_adaptive_loss_is_the_mean_negative_log_probability_of_the_targets() -> None:
    model = adaptive_model()
    idx = torch.randint(0, WORDS, (3, 9))
    with torch.no_grad():
        logits, loss, _ = model(idx, targets=idx)
        logp, _, _ = model(idx)
    assert logits is None  # training does not build the full distribution
    expected = -logp.gather(-1, idx[..., None]).mean()
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=0)


def test_the_adaptive_output_bias_starts_at_the_unigram_frequencies() -> None:
    model = adaptive_model()
    with torch.no_grad():
        for p in model.head.parameters():
            p.zero_()
    ids = np.random.default_rng(1).zipf(1.5, size=500) % WORDS
    model.init_output_bias(ids)
    counts = np.bincount(ids, minlength=WORDS) + 1.0
    freq = counts / counts.sum()
    with torch.no_grad():
        p = model.head.log_prob(torch.zeros(1, 16))[0].double().exp().numpy()
    np.testing.assert_allclose(p[:5], freq[:5], rtol=1e-5)  # the frequent ids: their own
    for low, high in ((5, 20), (20, WORDS)):  # a cluster: its total, shared equally
        np.testing.assert_allclose(p[low:high], freq[low:high].sum() / (high - low), rtol=1e-5)


def test_a_softmax_chunk_too_large_for_one_call_is_scored_row_slices_at_a_time() -> None:
    torch.manual_seed(0)
    vocab = SCORED_PER_CALL // 64 + 1  # 64 rows need more than one call
    head = torch.nn.Linear(4, vocab)
    hidden, targets = torch.randn(1, 64, 4), torch.randint(0, vocab, (1, 64))
    with torch.no_grad():
        sliced = linear_target_logprobs(head, hidden, targets)
        whole = gather_logprobs(head(hidden), targets)
    assert sliced.shape == (1, 64)
    assert torch.equal(sliced, whole)  # each row's log-softmax is its own


@pytest.mark.filterwarnings("error")  # no deprecated call, no resized output
def test_a_softmax_chunk_needing_many_calls_is_scored_whole() -> None:
    torch.manual_seed(0)
    vocab = SCORED_PER_CALL // 8 + 1  # 7 rows a call: 64 rows take 10 calls
    head = torch.nn.Linear(4, vocab)
    hidden, targets = torch.randn(64, 4), torch.randint(0, vocab, (64,))
    with torch.no_grad():
        whole = gather_logprobs(head(hidden)[None], targets[None])[0]
        sliced = linear_target_logprobs(head, hidden, targets)
    assert torch.equal(sliced, whole)


def test_a_softmax_chunk_is_scored_on_the_device_of_its_logits() -> None:
    vocab = SCORED_PER_CALL // 64 + 1  # more than one call, as above; "meta" holds no data
    head = torch.nn.Linear(4, vocab, device="meta")
    hidden = torch.empty(1, 64, 4, device="meta")
    targets = torch.zeros(1, 64, dtype=torch.long, device="meta")
    with torch.no_grad():
        out = linear_target_logprobs(head, hidden, targets)
    assert (out.device.type, out.dtype, out.shape) == ("meta", torch.float64, (1, 64))


def test_tied_weights_with_the_adaptive_softmax_are_refused() -> None:
    with pytest.raises(ParamError, match="tie_weights.*output = 'adaptive'.*softmax"):
        NetParams(embedding_size=8, hidden_size=8, tie_weights=True, output="adaptive")


@pytest.mark.parametrize("model", ["lstm", "seq2seq"])
def test_cutoffs_not_below_the_vocabulary_size_are_refused_when_the_model_is_built(
    model: str,
) -> None:
    net = NetParams(embedding_size=16, hidden_size=16, output="adaptive")  # cutoffs 2000, 6000
    with pytest.raises(ParamError, match=r"net.cutoffs = \[2000, 6000\].*below the vocab.*29"):
        build_model(model, net, 29, 1)
    with pytest.raises(ParamError, match="output: softmax"):
        build_model(model, net.replace(cutoffs=(3, 29)), 29, 1)
    build_model(model, net.replace(cutoffs=(3, 28)), 29, 1)  # the last cluster: one id
    build_model(model, NetParams(embedding_size=16, hidden_size=16), 29, 1)  # softmax: unused


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cutoffs": (20, 5)}, r"net.cutoffs = \[20, 5\] must be a non-empty, increasing list"),
        ({"cutoffs": (5, 5)}, r"net.cutoffs = \[5, 5\] must be a non-empty, increasing list"),
        ({"cutoffs": ()}, r"net.cutoffs = \[\] must be a non-empty"),
        ({"cutoffs": (0, 5)}, r"net.cutoffs\[0\] = 0 must be"),
        ({"div_value": 0.0}, "net.div_value = 0.0 must be a number > 0"),
        ({"div_value": 5.0}, "net.div_value = 5.0 with 2 cutoffs.*width 0"),
        ({"output": "hierarchical"}, "net.output = 'hierarchical'.*softmax, adaptive"),
        ({"init_range": -0.1}, "net.init_range = -0.1 must be"),
    ],
)
def test_bad_output_layer_params_are_named_with_what_is_allowed(changes, message) -> None:
    with pytest.raises(ParamError, match=message):
        NetParams(**{"hidden_size": 16, "output": "adaptive", **changes})


@pytest.mark.parametrize("name", ["lstm", "gru-scratch-2-layers", "seq2seq-bidirectional-concat"])
@pytest.mark.parametrize("bound", [0.1, 0.05])
def test_init_range_draws_every_parameter_uniformly_within_the_bound(name: str, bound) -> None:
    model = small_model(name, init_range=bound)
    model.init_output_bias(np.arange(7))  # the recipe's bias is drawn too, not the unigrams
    for key, p in model.named_parameters():
        assert p.abs().max() <= bound, key
        if p.numel() >= 16:  # drawn, not left at zero or at a layer's own init
            assert p.abs().max() > bound / 2 and p.min() < 0 < p.max(), key


def test_init_range_zero_keeps_each_layers_own_initialisation() -> None:
    for name in CONFIGS:
        default = small_model(name).state_dict()
        explicit = small_model(name, init_range=0.0).state_dict()
        assert default.keys() == explicit.keys()
        assert all(torch.equal(default[k], explicit[k]) for k in default), name
    head_bias = small_model("lstm").head.bias
    assert torch.equal(head_bias, torch.zeros_like(head_bias))  # not drawn
