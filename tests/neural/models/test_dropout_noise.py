"""seqlm's dropout draws torch's masks from the same generator draws, faster: the same numbers."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from seqlm.neural.dynamic import Adapter
from seqlm.neural.models.regularization import Dropout, dropout, keep_noise


@pytest.mark.parametrize("shape", [(3, 1, 5), (512, 2048), (7,)])
@pytest.mark.parametrize("keep", [0.75, 0.5, 0.9])
def test_the_noise_is_bernoullis_from_the_same_draws_and_leaves_the_generator_where_it_would(
    shape, keep
) -> None:
    like = torch.empty(shape)
    torch.manual_seed(3)
    theirs, their_next = torch.empty_like(like).bernoulli_(keep).div_(keep), torch.rand(4)
    torch.manual_seed(3)
    ours, our_next = keep_noise(like, keep), torch.rand(4)
    assert torch.equal(ours, theirs) and torch.equal(our_next, their_next)
    kept = torch.tensor(1 / keep, dtype=like.dtype).item()
    assert ours.dtype == like.dtype and set(ours.unique().tolist()) <= {0.0, kept}


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5])
def test_dropout_is_torchs_number_for_number_on_contiguous_and_strided_inputs(p) -> None:
    x = torch.randn(6, 40, 32)
    for view in (x, x.transpose(0, 2), x[:, ::2]):
        torch.manual_seed(11)
        theirs = F.dropout(view, p, training=True)
        torch.manual_seed(11)
        assert torch.equal(dropout(view, p), theirs)


def test_the_dropout_module_is_nn_dropouts_and_off_in_eval_mode() -> None:
    x = torch.randn(4, 9, 16)
    ours, theirs = Dropout(0.2), nn.Dropout(0.2)
    torch.manual_seed(5)
    expected = theirs(x)
    torch.manual_seed(5)
    assert torch.equal(ours(x), expected)
    assert torch.equal(ours.eval()(x), x) and ours.state_dict() == {}
    assert torch.equal(dropout(x, 0.0), x) and torch.equal(dropout(x, 0.3, False), x)
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))


@pytest.mark.parametrize("update", ["rms", "sgd"])
def test_the_adapters_in_place_step_gives_the_plainly_written_updates_numbers(update) -> None:
    torch.manual_seed(0)
    weights = [torch.randn(30, 8), torch.randn(8)]
    params = [w.clone() for w in weights]
    adapter = Adapter(params, update, lr=0.01, decay=0.05)
    plain, mean_sq = [w.clone() for w in weights], [torch.zeros_like(w) for w in weights]
    for step in range(1, 4):
        grads = [torch.randn_like(w) for w in weights]
        adapter.step([*grads[:1], None] if step == 2 else grads)
        for i, (p, g) in enumerate(zip(plain, grads, strict=True)):
            if not (step == 2 and i == 1):  # a weight without a gradient only decays
                if update == "sgd":
                    p.sub_(0.01 * g)
                else:
                    mean_sq[i].mul_(0.99).add_((1 - 0.99) * g * g)
                    p.sub_(0.01 * g / (mean_sq[i] / (1 - 0.99**step)).sqrt_().add_(1e-8))
            p.add_(0.05 * (weights[i] - p))
        for ours, theirs in zip(params, plain, strict=True):
            assert torch.equal(ours, theirs)


def test_the_dropout_module_says_its_probability() -> None:
    assert repr(Dropout(0.2)) == "Dropout(p=0.2)"
