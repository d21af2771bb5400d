"""One helper for trees of tensors, and each model saying how it reads a stream."""

from __future__ import annotations

import pytest
import torch
from small_models import BOS_ID, CONFIGS, small_model

from seqlm.core.errors import ParamError
from seqlm.neural.dynamic import check_dynamic
from seqlm.neural.tensors import detached, map_tensors, moved


def test_detached_cuts_every_tensor_of_a_nested_state_and_keeps_the_rest() -> None:
    w = torch.ones(2, requires_grad=True)
    state = ((w * 2, [w * 3, None]), 7, "label")
    out = detached(state)
    assert type(out) is tuple and type(out[0][1]) is list
    (a, (b, none)), count, label = out
    assert not a.requires_grad and not b.requires_grad and a.grad_fn is None
    assert torch.equal(a, w * 2) and torch.equal(b, w * 3)
    assert (none, count, label) == (None, 7, "label")
    assert detached(None) is None


def test_moved_detaches_and_puts_each_tensor_on_the_device() -> None:
    w = torch.ones(3, requires_grad=True)
    out = moved([w * 2, (w, 1)], "meta")
    assert [out[0].device.type, out[1][0].device.type] == ["meta", "meta"]
    assert not out[0].requires_grad and out[1][1] == 1


def test_map_tensors_applies_the_function_to_each_tensor_only() -> None:
    assert map_tensors((torch.tensor(1.0), 2.0), lambda t: t + 1)[0].item() == 2.0
    assert map_tensors((torch.tensor(1.0), 2.0), lambda t: t + 1)[1] == 2.0


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_model_but_seq2seq_has_a_stream_reader_and_dynamic_evaluation_uses_it(name) -> None:
    model = small_model(name)
    reader = model.stream_reader()
    if CONFIGS[name][0] == "seq2seq":
        assert reader is None
        with pytest.raises(ParamError, match="has no stream to adapt along"):
            check_dynamic(model)
        return
    assert check_dynamic(model) == reader
    inputs = torch.tensor([[BOS_ID, 2, 3, 4]])
    whole, _ = reader(inputs, None)
    first, state = reader(inputs[:, :2], None)
    rest, _ = reader(inputs[:, 2:], detached(state))
    assert whole.shape[:2] == (1, 4)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), whole)  # the state carries it
