"""Every model is a left-to-right language model: one proper distribution per target, from the past."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from small_models import BOS_ID, CONFIGS, SLIDING_WINDOWS, VOCAB_SIZE, small_model

from seqlm.data.corpus import SplitData
from seqlm.neural.evaluation import score, target_logprobs
from seqlm.neural.models import build_model
from seqlm.params import NetParams, TrainParams
from seqlm.perplexity import score_split

ALL = list(CONFIGS)


@pytest.mark.parametrize("name", ALL)
def test_every_target_is_scored_exactly_once(name: str, stream_ids: np.ndarray) -> None:
    model = small_model(name)
    for n in (1, 4, 5, len(stream_ids)):  # shorter than, equal to and longer than a window
        lp = target_logprobs(model, stream_ids[:n], BOS_ID)
        assert lp.shape == (n,) and lp.dtype == np.float64
        assert np.all(np.isfinite(lp)) and np.all(lp < 0)


@pytest.mark.parametrize("name", ALL)
def test_log_probabilities_depend_only_on_earlier_tokens(name: str, stream_ids: np.ndarray) -> None:
    model = small_model(name)
    base = target_logprobs(model, stream_ids, BOS_ID)
    for k in (0, 4, 5, 9, 17, len(stream_ids) - 1):
        changed = stream_ids.copy()
        changed[k] = (changed[k] + 1) % VOCAB_SIZE
        lp = target_logprobs(model, changed, BOS_ID)
        np.testing.assert_array_equal(
            lp[:k], base[:k], err_msg=f"changing token {k} moved an earlier score"
        )
        assert lp[k] != base[k]  # the changed token itself is a different target


@pytest.mark.parametrize("name", ALL)
def test_each_target_distribution_sums_to_one_over_the_vocabulary(
    name: str, stream_ids: np.ndarray
) -> None:
    model = small_model(name)
    for t in (0, 5, 13):
        total = 0.0
        for v in range(VOCAB_SIZE):
            ids = stream_ids[: t + 1].copy()
            ids[t] = v
            total += np.exp(target_logprobs(model, ids, BOS_ID)[t])
        assert total == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("name", [name for name in ALL if name not in SLIDING_WINDOWS])
def test_reading_the_stream_token_by_token_gives_the_same_scores(
    name: str, stream_ids: np.ndarray
) -> None:
    model = small_model(name)
    expected = target_logprobs(model, stream_ids, BOS_ID)
    inputs = torch.tensor(np.concatenate([[BOS_ID], stream_ids[:-1]]), dtype=torch.long)[None]
    state, got = None, []
    with torch.no_grad():
        for t in range(inputs.shape[1]):
            logits, state = model.stream(inputs[:, t : t + 1], state)
            got.append(torch.log_softmax(logits[0, 0].double(), -1)[int(stream_ids[t])].item())
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_chunked_scoring_of_a_recurrent_lm_carries_the_state_exactly(
    stream_ids: np.ndarray,
) -> None:
    model = small_model("lstm-2-layers")
    whole = target_logprobs(model, stream_ids, BOS_ID, chunk_size=1000)
    chunked = target_logprobs(model, stream_ids, BOS_ID, chunk_size=4)
    np.testing.assert_allclose(chunked, whole, atol=1e-6)


def test_scoring_leaves_a_training_model_in_training_mode(stream_ids: np.ndarray) -> None:
    model = small_model("lstm", output_dropout=0.5).train()
    a = target_logprobs(model, stream_ids, BOS_ID)
    b = target_logprobs(model, stream_ids, BOS_ID)
    np.testing.assert_array_equal(a, b)  # dropout off while scoring
    assert model.training


@pytest.mark.parametrize("mode", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_fused_and_scratch_language_models_agree_on_logits_and_states(
    mode: str, num_layers: int
) -> None:
    torch.manual_seed(0)
    shape = {"embedding_size": 6, "hidden_size": 8, "num_layers": num_layers}
    fused = build_model(mode, NetParams(**shape, cell="fused"), VOCAB_SIZE, BOS_ID).eval()
    scratch = build_model(mode, NetParams(**shape, cell="scratch"), VOCAB_SIZE, BOS_ID).eval()
    scratch.load_state_dict(fused.state_dict())
    idx = torch.randint(0, VOCAB_SIZE, (3, 10))
    logits_f, _, state_f = fused(idx)
    logits_s, _, state_s = scratch(idx)
    torch.testing.assert_close(logits_s, logits_f, atol=1e-5, rtol=0)
    for a, b in zip(state_s, state_f) if mode == "lstm" else [(state_s, state_f)]:
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_tied_weights_share_one_matrix() -> None:
    tied = NetParams(embedding_size=8, hidden_size=8, tie_weights=True)
    model = build_model("lstm", tied, VOCAB_SIZE, BOS_ID)
    assert model.head.weight is model.embedding.weight
    untied = build_model("lstm", NetParams(embedding_size=8, hidden_size=8), VOCAB_SIZE, BOS_ID)
    n = sum(p.numel() for p in model.parameters())
    assert n == sum(p.numel() for p in untied.parameters()) - VOCAB_SIZE * 8


@pytest.mark.parametrize(
    "name", ["lstm", "gru-scratch-2-layers", "seq2seq-bidirectional-concat", "transformer"]
)
def test_regularisers_are_active_in_training_and_off_in_evaluation(name: str) -> None:
    model = small_model(
        name,
        embedding_dropout=0.3,
        input_dropout=0.3,
        output_dropout=0.3,
        weight_drop=0.5,
        dropout=0.3,
    )
    ids = torch.randint(2, VOCAB_SIZE, (40,)).numpy()
    batch = next(
        model.training_batches(
            ids, BOS_ID, TrainParams(batch_size=2, num_steps=8), random.Random(0)
        )
    )

    def run():
        return model.batch_loss(batch, None)[0]

    model.train()
    torch.manual_seed(0)
    a = run()
    b = run()
    assert not torch.equal(a, b)
    model.eval()
    torch.testing.assert_close(run(), run())


def test_weight_drop_keeps_gradients_flowing_to_the_hidden_weights() -> None:
    """The gradient reaches ``weight_hh`` through the DropConnect mask: it is the gradient of the
    same model run on the masked weights, times the mask (zero where a weight was dropped)."""
    no_dropout = {"embedding_dropout": 0.0, "input_dropout": 0.0, "output_dropout": 0.0}
    model = small_model("lstm", weight_drop=0.5, **no_dropout).train()
    idx = torch.randint(2, VOCAB_SIZE, (2, 8))
    weight = model.rnn.weight_hh_l0
    torch.manual_seed(1)
    _, loss, _ = model(idx, targets=idx)
    loss.backward()
    torch.manual_seed(1)  # the one draw of the forward pass: the mask (kept weights × 2)
    mask = torch.nn.functional.dropout(torch.ones_like(weight), 0.5, training=True)
    assert 0.3 < (mask == 0).float().mean() < 0.7

    plain = small_model("lstm", weight_drop=0.0, **no_dropout).train()
    with torch.no_grad():
        plain.rnn.weight_hh_l0.copy_(weight * mask)
    _, plain_loss, _ = plain(idx, targets=idx)
    plain_loss.backward()
    torch.testing.assert_close(loss, plain_loss)
    assert weight.grad is not None and plain.rnn.weight_hh_l0.grad is not None
    torch.testing.assert_close(weight.grad, plain.rnn.weight_hh_l0.grad * mask)
    assert torch.all(weight.grad[mask == 0] == 0) and weight.grad[mask > 0].abs().sum() > 0


def test_a_split_is_scored_by_the_convention_from_the_models_target_log_probabilities(
    stream_ids: np.ndarray,
) -> None:
    model = small_model("lstm")
    split = SplitData(name="val", ids=stream_ids, lines=1, characters=40, oov=2)
    result, lp = score(model, split, BOS_ID)
    np.testing.assert_array_equal(lp, target_logprobs(model, stream_ids, BOS_ID))
    assert result == score_split(lp, characters=40, oov=2)
