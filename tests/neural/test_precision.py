"""Training precision: bf16 autocast, fp16's loss scaling and skipped steps, refused combinations."""

from __future__ import annotations

import pytest
import torch

from seqlm.core.errors import ParamError
from seqlm.neural.optim import Updater
from seqlm.neural.precision import Precision, check_precision
from seqlm.params import TrainParams
from tiny_pipeline import NO_DROPOUT, TINY_TRAIN, train_tiny, weights_after_each_step

CPU = torch.device("cpu")


def test_fp16_on_the_cpu_is_refused_saying_what_is_allowed(tmp_path, tiny_text) -> None:
    with pytest.raises(ParamError, match="needs a CUDA device.*use 'fp32' or 'bf16'"):
        check_precision("fp16", CPU)
    params = TINY_TRAIN.replace(precision="fp16", device="cpu")
    with pytest.raises(ParamError, match="train.precision = 'fp16'"):
        train_tiny(tmp_path, tiny_text, params=params)
    assert not (tmp_path / "lstm.pt").exists()
    with pytest.raises(ParamError, match="precision"):
        TrainParams(precision="fp8")


def test_fp32_runs_without_autocast_and_bf16_autocasts_the_forward_pass() -> None:
    x = torch.ones(2, 3)
    with Precision("fp32", CPU).autocast():
        assert (x @ x.T).dtype == torch.float32
    with Precision("bf16", CPU).autocast():
        assert (x @ x.T).dtype == torch.bfloat16
    assert Precision("bf16", CPU).scaler is None


def test_bf16_on_a_cpu_without_bf16_kernels_runs_the_lstm_without_onednn(monkeypatch) -> None:
    """oneDNN's LSTM refuses bf16 on a CPU without bf16 kernels (no AVX-512 BF16 or AMX): the
    forward pass then runs on torch's own kernels, and oneDNN is back on after it."""
    lstm, x = torch.nn.LSTM(4, 8, batch_first=True), torch.randn(2, 3, 4)
    for has_kernels in (True, False):
        monkeypatch.setattr("seqlm.neural.precision.cpu_has_bf16_kernels", lambda h=has_kernels: h)
        with Precision("bf16", CPU).autocast():
            assert torch.backends.mkldnn.enabled is has_kernels
            assert (x[0] @ x[0].T).dtype == torch.bfloat16  # still autocast
            if not has_kernels:
                out, _ = lstm(x)
                out.float().sum().backward()
        assert torch.backends.mkldnn.enabled
    with Precision("fp32", CPU).autocast():
        assert torch.backends.mkldnn.enabled


def test_bf16_training_on_the_cpu_keeps_float32_weights_near_the_fp32_run(
    tmp_path, tiny_text
) -> None:
    kw = {"net": NO_DROPOUT}
    fp32 = weights_after_each_step(tmp_path / "a", tiny_text, 3, **kw)[-1]
    bf16 = weights_after_each_step(
        tmp_path / "b", tiny_text, 3, params=TINY_TRAIN.replace(precision="bf16"), **kw
    )[-1]
    differs = False
    for key, w in bf16.items():
        assert w.dtype == fp32[key].dtype  # the weights themselves stay float32
        assert torch.isfinite(w).all()
        assert torch.allclose(w, fp32[key], atol=0.05), key  # 3 steps of lr 0.01 apart at most
        differs |= not torch.equal(w, fp32[key])
    assert differs  # the forward pass did run in bfloat16


def scaled_updater(model: torch.nn.Module) -> Updater:
    params = TrainParams(optimizer="sgd", lr=0.1, weight_decay=0.0, clip=1.0, warmup_steps=0)
    return Updater(model, params, 10, scaler=torch.amp.GradScaler("cpu", init_scale=1024.0))


def test_loss_scaling_unscales_before_clipping_and_skips_an_overflowing_step() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    plain = torch.nn.Linear(3, 1)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(4, 3)
    updater = scaled_updater(model)
    before = [p.detach().clone() for p in model.parameters()]

    updater.update(model(x).sum() * float("inf"))
    assert (updater.steps, updater.skipped) == (0, 1)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert updater.scaler is not None and updater.scaler.get_scale() == 512.0
    assert updater.schedule.steps == 0  # the schedule did not move either

    updater.update(model(x).sum() * 10)  # clipped to norm 1 after unscaling
    reference = TrainParams(optimizer="sgd", lr=0.1, weight_decay=0.0, clip=1.0, warmup_steps=0)
    Updater(plain, reference, 10).update(plain(x).sum() * 10)
    assert (updater.steps, updater.skipped) == (1, 1)
    for a, b in zip(model.parameters(), plain.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_the_loss_scale_and_the_skipped_steps_are_saved_with_the_updater() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    updater = scaled_updater(model)
    updater.update(model(torch.randn(4, 3)).sum() * float("inf"))  # skipped: the scale halves
    state = updater.state_dict()
    assert state["scaler"]["scale"] == 512.0 and state["skipped"] == 1
    again = scaled_updater(torch.nn.Linear(3, 1))
    again.load_state_dict(state)
    assert again.scaler is not None and again.scaler.get_scale() == 512.0
    assert (again.steps, again.skipped) == (0, 1)
    params = TrainParams(optimizer="sgd", lr=0.1, warmup_steps=0)
    assert Updater(torch.nn.Linear(3, 1), params, 10).state_dict()["scaler"] is None


@pytest.mark.parametrize("model", ["rnn", "gru", "lstm", "seq2seq", "transformer"])
@pytest.mark.parametrize("output", ["softmax", "adaptive"])
def test_every_model_and_output_layer_trains_under_bf16_autocast(model, output, tiny_text) -> None:
    """Under bf16 autocast each model gives the fp32 loss and gradients up to bfloat16 rounding,
    carries its state from batch to batch, and a few steps on a batch lower its loss."""
    import numpy as np

    from seqlm.neural.models import build_model
    from seqlm.neural.models.base import Batch
    from tiny_pipeline import tiny_data

    vocab = tiny_data(tiny_text).vocab
    net = NO_DROPOUT.replace(output=output, cutoffs=(5, 10), weight_drop=0.25)
    torch.manual_seed(0)
    lm = build_model(model, net, len(vocab), vocab.id_of("<bos>"))
    x = np.random.default_rng(0).integers(0, len(vocab), (4, 8))
    arrays = (x, x, np.array([True, False, True, True])) if model == "seq2seq" else (x, x)
    batch = Batch(arrays, continues=model != "seq2seq")

    def loss_and_grads(precision: str, state=None):
        lm.zero_grad()
        torch.manual_seed(1)  # the same weight-drop mask in either precision
        with Precision(precision, CPU).autocast():
            loss, _, state = lm.batch_loss(batch, state)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in lm.parameters() if p.grad is not None])
        return loss.detach(), grads, state

    fp32_loss, fp32_grads, _ = loss_and_grads("fp32")
    loss, grads, state = loss_and_grads("bf16")
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert abs(loss - fp32_loss) <= 0.02 * fp32_loss  # bfloat16 keeps ~3 significant digits
    assert torch.nn.functional.cosine_similarity(grads, fp32_grads, dim=0) > 0.99
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in lm.parameters())
    carried, _, _ = loss_and_grads("bf16", state)  # a state is carried under autocast too
    assert torch.isfinite(carried) and (state is not None) == bool(carried != loss)

    optimizer = torch.optim.SGD(lm.parameters(), lr=0.5)
    for _ in range(5):
        loss_and_grads("bf16")
        optimizer.step()
    assert loss_and_grads("bf16")[0] < loss  # it learns the batch
