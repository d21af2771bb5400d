"""The from-scratch cells follow the notes' equations and agree with torch's fused layers."""

from __future__ import annotations

import pytest
import torch

from seqlm.neural.models import ScratchRecurrent, make_recurrent


def fused_and_scratch(mode: str, num_layers: int, bidirectional: bool = False):
    torch.manual_seed(0)
    fused = make_recurrent(mode, "fused", 5, 7, num_layers, bidirectional=bidirectional).double()
    scratch = make_recurrent(
        mode, "scratch", 5, 7, num_layers, bidirectional=bidirectional
    ).double()
    scratch.load_state_dict(fused.state_dict())  # same keys, same shapes: interchangeable
    return fused.eval(), scratch.eval()


def random_state(mode: str, layers: int, batch: int = 3, hidden: int = 7):
    h = torch.randn(layers, batch, hidden, dtype=torch.float64)
    return (h, torch.randn_like(h)) if mode == "lstm" else h


def assert_states_close(a, b) -> None:
    for x, y in zip(a, b) if isinstance(a, tuple) else [(a, b)]:
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("mode", ["rnn", "gru", "lstm"])
def test_scratch_cells_give_the_same_outputs_and_final_states_as_torch(
    mode: str, num_layers: int
) -> None:
    fused, scratch = fused_and_scratch(mode, num_layers)
    x = torch.randn(3, 11, 5, dtype=torch.float64)  # (B, T, I)
    for state in (None, random_state(mode, num_layers)):
        out_f, state_f = fused(x, state)
        out_s, state_s = scratch(x, state)
        torch.testing.assert_close(out_s, out_f, atol=1e-5, rtol=0)  # (B, T, H)
        assert_states_close(state_s, state_f)


@pytest.mark.parametrize("mode", ["rnn", "gru", "lstm"])
def test_scratch_cells_agree_with_torch_in_float32_too(mode: str) -> None:
    torch.manual_seed(1)
    fused = make_recurrent(mode, "fused", 5, 7, 2).eval()
    scratch = make_recurrent(mode, "scratch", 5, 7, 2).eval()
    scratch.load_state_dict(fused.state_dict())
    x = torch.randn(2, 9, 5)
    (out_f, state_f), (out_s, state_s) = fused(x), scratch(x)
    torch.testing.assert_close(out_s, out_f, atol=1e-5, rtol=0)
    assert_states_close(state_s, state_f)


@pytest.mark.parametrize("mode", ["gru", "lstm"])
def test_bidirectional_scratch_layers_match_torch(mode: str) -> None:
    fused, scratch = fused_and_scratch(mode, 2, bidirectional=True)
    x = torch.randn(2, 6, 5, dtype=torch.float64)
    (out_f, state_f), (out_s, state_s) = fused(x), scratch(x)
    assert out_s.shape == (2, 6, 14)
    torch.testing.assert_close(out_s, out_f, atol=1e-5, rtol=0)
    assert_states_close(state_s, state_f)


@pytest.mark.parametrize("mode", ["rnn", "gru", "lstm"])
def test_scratch_gradients_match_torch(mode: str) -> None:
    fused, scratch = fused_and_scratch(mode, 2)
    x = torch.randn(2, 5, 5, dtype=torch.float64)
    fused(x)[0].sum().backward()
    scratch(x)[0].sum().backward()
    for (name, pf), (_, ps) in zip(fused.named_parameters(), scratch.named_parameters()):
        torch.testing.assert_close(ps.grad, pf.grad, atol=1e-5, rtol=0, msg=name)


def test_scratch_parameters_are_named_and_shaped_like_torchs() -> None:
    fused = torch.nn.LSTM(5, 7, 2, batch_first=True, bidirectional=True)
    scratch = ScratchRecurrent("lstm", 5, 7, 2, bidirectional=True)
    assert {k: v.shape for k, v in scratch.state_dict().items()} == {
        k: v.shape for k, v in fused.state_dict().items()
    }


def test_lstm_cell_is_the_notes_equations() -> None:
    """c_t = f ⊙ c_{t-1} + i ⊙ u, h_t = o ⊙ tanh(c_t), gates in torch's order i, f, u, o."""
    from seqlm.neural.models.cells import lstm_cell

    torch.manual_seed(2)
    h, c = torch.randn(1, 3), torch.randn(1, 3)
    xw, w_hh, b_hh = torch.randn(1, 12), torch.randn(12, 3), torch.randn(12)
    pre = xw + h @ w_hh.T + b_hh
    i, f, u, o = (
        pre[:, 0:3].sigmoid(),
        pre[:, 3:6].sigmoid(),
        pre[:, 6:9].tanh(),
        pre[:, 9:12].sigmoid(),
    )
    c_expected = f * c + i * u
    h_new, c_new = lstm_cell(xw, h, c, w_hh, b_hh)
    torch.testing.assert_close(c_new, c_expected)
    torch.testing.assert_close(h_new, o * torch.tanh(c_expected))
