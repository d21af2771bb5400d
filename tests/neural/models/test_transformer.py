"""The transformer: causal attention, sliding-window scoring, positions, tying, its params."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from small_models import BOS_ID, VOCAB_SIZE

from seqlm.core.errors import ParamError
from seqlm.neural.evaluation import target_logprobs
from seqlm.neural.models import TransformerLM, build_model, check_net_for_model
from seqlm.neural.models.attention import Rotary, shift_half
from seqlm.neural.models.transformer import scoring_stride
from seqlm.params import NetParams, TrainParams


def transformer(seed: int = 0, **net) -> TransformerLM:
    """A small transformer (2 layers, 2 heads, width 8, embeddings of 6 projected to it)."""
    torch.manual_seed(seed)
    shape = {"embedding_size": 6, "hidden_size": 8, "heads": 2, "num_layers": 2, **net}
    model = build_model("transformer", NetParams(**shape), VOCAB_SIZE, BOS_ID)
    assert isinstance(model, TransformerLM)
    return model.eval()


def brute_force_logprobs(model: TransformerLM, ids: np.ndarray, context: int) -> np.ndarray:
    """Each target scored alone from the window the docstring gives it: the inputs from
    ``<bos>`` up to it while it lies in the first window of ``C``, else the window
    ``k = (t − C) // S + 1`` that starts at input ``k S``."""
    inputs = np.concatenate([[BOS_ID], ids[:-1]])
    stride = scoring_stride(context)
    out = []
    for t in range(len(ids)):
        start = 0 if t < context else ((t - context) // stride + 1) * stride
        assert t - start + 1 >= min(t + 1, context - stride + 1)  # the context it is promised
        window = torch.as_tensor(inputs[start : t + 1], dtype=torch.long)[None]  # (1, ≤ C)
        with torch.no_grad():
            logits, _ = model(window)
        out.append(torch.log_softmax(logits[0, -1].double(), -1)[int(ids[t])].item())
    return np.asarray(out)


def test_the_scoring_stride_is_half_the_context() -> None:
    assert [scoring_stride(c) for c in (1, 2, 3, 4, 5, 64)] == [1, 1, 1, 2, 2, 32]


@pytest.mark.parametrize(
    ("positions", "token_shift"), [("learned", False), ("rotary", False), ("rotary", True)]
)
@pytest.mark.parametrize("context", [1, 2, 3, 4, 7, 8, 30])
def test_sliding_windows_score_each_target_once_from_the_window_the_docstring_gives_it(
    positions: str, token_shift: bool, context: int, stream_ids: np.ndarray
) -> None:
    model = transformer(context=context, positions=positions, token_shift=token_shift)
    expected = brute_force_logprobs(model, stream_ids, context)
    for windows_per_batch in (1, 3, 256):
        got = target_logprobs(model, stream_ids, BOS_ID, windows_per_batch=windows_per_batch)
        assert got.shape == (len(stream_ids),)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_a_target_beyond_the_first_window_sees_no_token_before_its_window(
    stream_ids: np.ndarray,
) -> None:
    # C = 4, S = 2: window 3 reads inputs 6 .. 9 and scores targets 8 and 9 (input i is token
    # i − 1, so it reads tokens 5 .. 8); token 4 is out of their sight, window 2 (inputs 4 .. 7)
    # reads it for target 7
    model = transformer(context=4)
    base = target_logprobs(model, stream_ids, BOS_ID)
    changed = stream_ids.copy()
    changed[4] = (changed[4] + 1) % VOCAB_SIZE
    lp = target_logprobs(model, changed, BOS_ID)
    np.testing.assert_allclose(lp[8:10], base[8:10], rtol=0, atol=1e-12)
    assert lp[7] != base[7]
    changed = stream_ids.copy()
    changed[5] = (changed[5] + 1) % VOCAB_SIZE
    assert target_logprobs(model, changed, BOS_ID)[8] != base[8]


@pytest.mark.parametrize(
    ("positions", "token_shift"), [("learned", False), ("rotary", False), ("learned", True)]
)
def test_the_training_logits_at_a_position_never_depend_on_later_tokens(
    positions: str, token_shift: bool
) -> None:
    model = transformer(context=12, positions=positions, token_shift=token_shift)
    x = torch.randint(0, VOCAB_SIZE, (3, 12))
    logits, _ = model(x)
    for t in (0, 5, 9):
        for k in (1, 2):
            changed = x.clone()
            changed[:, t + k] = (changed[:, t + k] + 1) % VOCAB_SIZE
            moved, _ = model(changed)
            torch.testing.assert_close(moved[:, : t + 1], logits[:, : t + 1], rtol=0, atol=1e-6)
            assert not torch.allclose(moved[:, t + k], logits[:, t + k])


@pytest.mark.parametrize("token_shift", [False, True])
def test_the_loss_gradient_at_a_position_never_reaches_later_inputs(token_shift: bool) -> None:
    model = transformer(context=10, token_shift=token_shift)
    x = torch.randint(0, VOCAB_SIZE, (2, 10))
    embedded = model.embedding(x).detach().requires_grad_(True)  # (B, T, E)
    model.embedding.forward = lambda idx: embedded  # type: ignore[method-assign]
    logits, _ = model(x)
    logits[:, 4].sum().backward()
    assert embedded.grad is not None
    assert embedded.grad[:, 5:].abs().max() == 0 and embedded.grad[:, :5].abs().max() > 0


def test_training_batches_are_windows_of_num_steps_predicting_their_next_tokens() -> None:
    model = transformer(context=8)
    ids = np.arange(2, 42) % VOCAB_SIZE
    params = TrainParams(batch_size=2, num_steps=6)
    stream = np.concatenate([[BOS_ID], ids])
    for sampling in ("sequential", "random"):
        p = params.replace(sampling=sampling)
        batches = list(model.training_batches(ids, BOS_ID, p, random.Random(0)))
        assert 0 < len(batches) <= model.batches_per_epoch(len(ids), p)
        for batch in batches:
            x, y = batch.arrays
            assert x.shape == y.shape == (2, 6) and not batch.continues
            for row_x, row_y in zip(x, y, strict=True):
                start = next(i for i in range(len(stream)) if np.array_equal(stream[i:][:6], row_x))
                assert np.array_equal(stream[start + 1 : start + 7], row_y)
        loss, targets, state = model.batch_loss(batches[0], None)
        assert targets == 12 and state is None and loss.ndim == 0 and torch.isfinite(loss)


def test_windows_longer_than_the_context_are_refused() -> None:
    model = transformer(context=4)
    with pytest.raises(ParamError, match=r"train.num_steps = 5 exceeds net.context = 4"):
        model.batches_per_epoch(100, TrainParams(num_steps=5))
    with pytest.raises(ParamError, match="num_steps"):
        next(model.training_batches(np.arange(40) % 5, BOS_ID, TrainParams(num_steps=5), None))


def test_the_stream_predicts_each_token_from_the_last_context_inputs() -> None:
    model = transformer(context=5, positions="learned")
    inputs = torch.randint(0, VOCAB_SIZE, (2, 13))
    whole, state = model.stream(inputs, None)
    assert whole.shape == (2, 13, VOCAB_SIZE) and state.shape == (2, 4)
    torch.testing.assert_close(state, inputs[:, -4:])
    for i in range(13):
        alone, _ = model(inputs[:, max(0, i - 4) : i + 1])
        torch.testing.assert_close(whole[:, i], alone[:, -1], rtol=0, atol=1e-6)
    state, pieces = None, []
    for i in range(0, 13, 3):  # read in pieces, the state carrying the last C − 1 inputs
        logits, state = model.stream(inputs[:, i : i + 3], state)
        pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=0, atol=1e-6)


def test_rotary_scores_depend_only_on_the_distance_between_query_and_key() -> None:
    rotary = Rotary(4)
    q = torch.randn(4).expand(1, 1, 9, 4)  # the same query at every position
    k = torch.randn(4).expand(1, 1, 9, 4)
    scores = rotary(q)[0, 0] @ rotary(k)[0, 0].T  # (T, T)
    for distance in range(-3, 4):
        diagonal = torch.diagonal(scores, offset=distance)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal))
    assert not torch.allclose(scores[0, 0], scores[0, 3])


def test_the_token_shift_moves_the_second_half_of_the_channels_one_position_later() -> None:
    h = torch.arange(2 * 3 * 5, dtype=torch.float32).view(2, 3, 5)  # (B, T, H), H odd
    out = shift_half(h)
    torch.testing.assert_close(out[..., :2], h[..., :2], rtol=0, atol=0)
    torch.testing.assert_close(out[:, 1:, 2:], h[:, :-1, 2:], rtol=0, atol=0)
    assert out[:, 0, 2:].abs().max() == 0


def test_with_the_token_shift_a_position_reads_the_token_before_it_in_one_block() -> None:
    """One block with its attention's output projection zeroed (attention adds nothing): the
    MLP at ``t`` then reads token ``t`` alone, unless the shift hands it token ``t − 1``'s."""
    x = torch.randint(0, VOCAB_SIZE, (1, 6))
    changed = x.clone()
    changed[0, 2] = (changed[0, 2] + 1) % VOCAB_SIZE
    moved = {}
    for token_shift in (False, True):
        model = transformer(context=6, num_layers=1, token_shift=token_shift)
        with torch.no_grad():
            model.blocks[0].attention.proj.weight.zero_()  # attention adds nothing
        moved[token_shift] = (model(changed)[0] - model(x)[0])[0, 3].abs().max().item()
    assert moved[False] == 0 and moved[True] > 0


def test_the_token_shift_adds_no_parameters_and_changes_the_outputs() -> None:
    plain, shifted = transformer(), transformer(token_shift=True)
    assert [p.shape for p in plain.parameters()] == [p.shape for p in shifted.parameters()]
    shifted.load_state_dict(plain.state_dict())
    x = torch.randint(0, VOCAB_SIZE, (2, 8))
    assert not torch.allclose(plain(x)[0], shifted(x)[0])


def test_learned_positions_are_a_table_of_the_context_and_rotary_has_no_parameters() -> None:
    learned = transformer(context=6)
    assert learned.position is not None and learned.position.weight.shape == (6, 8)
    rotary = transformer(context=6, positions="rotary")
    assert rotary.position is None
    n = sum(p.numel() for p in learned.parameters())
    assert sum(p.numel() for p in rotary.parameters()) == n - 6 * 8


def test_tied_weights_share_the_embedding_matrix() -> None:
    tied = transformer(embedding_size=8, tie_weights=True)
    assert tied.head.weight is tied.embedding.weight
    assert tied.head.weight.data_ptr() == tied.embedding.weight.data_ptr()
    untied = transformer(embedding_size=8)
    n = sum(p.numel() for p in untied.parameters())
    assert sum(p.numel() for p in tied.parameters()) == n - VOCAB_SIZE * 8
    assert isinstance(untied.project, torch.nn.Identity)  # no projection when E == H
    assert transformer().project.weight.shape == (8, 6)  # E = 6 projected to H = 8


def test_weights_start_small_and_the_residual_projections_smaller() -> None:
    model = transformer(seed=0, embedding_size=64, hidden_size=64, num_layers=8, heads=4)
    assert model.embedding.weight.std().item() == pytest.approx(0.02, rel=0.1)
    qkv = model.blocks[0].attention.qkv
    assert qkv.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert qkv.bias is None
    for block in model.blocks:
        for layer in block.residual_projections():
            assert layer.weight.std().item() == pytest.approx(0.02 / math.sqrt(16), rel=0.1)


def test_the_output_bias_starts_at_the_unigram_log_frequencies() -> None:
    model = transformer()
    ids = np.array([2, 2, 2, 3, 4, 4])
    model.init_output_bias(ids)
    counts = np.bincount(ids, minlength=VOCAB_SIZE) + 1.0
    expected = np.log(counts / counts.sum())
    np.testing.assert_allclose(model.head.bias.detach().numpy(), expected, rtol=1e-6)


def test_the_token_shift_is_refused_for_the_other_models() -> None:
    for model in ("lstm", "gru", "rnn", "seq2seq"):
        with pytest.raises(ParamError, match=f"net.token_shift = true.*model = '{model}'"):
            check_net_for_model(model, NetParams(token_shift=True))
    check_net_for_model("transformer", NetParams(token_shift=True))


@pytest.mark.parametrize(
    ("net", "message"),
    [
        (
            {"hidden_size": 10, "heads": 4},
            r"net.hidden_size = 10 is not divisible by net.heads = 4",
        ),
        ({"hidden_size": 12, "heads": 4, "positions": "rotary"}, r"even head width.*= 3"),
        ({"bidirectional": True}, "net.bidirectional.*left-to-right"),
    ],
)
def test_a_net_the_transformer_cannot_use_is_refused_clearly(net: dict, message: str) -> None:
    with pytest.raises(ParamError, match=message):
        check_net_for_model("transformer", NetParams(**net))
    with pytest.raises(ParamError, match=message):
        build_model("transformer", NetParams(embedding_size=8, **net), VOCAB_SIZE, BOS_ID)
    check_net_for_model("lstm", NetParams(**{k: v for k, v in net.items() if k != "bidirectional"}))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("context", 0, "net.context = 0 must be an integer >= 1"),
        ("heads", 0, "net.heads = 0 must be an integer >= 1"),
        ("positions", "sinusoidal", "net.positions = 'sinusoidal'.*learned, rotary"),
    ],
)
def test_bad_transformer_values_are_named_with_what_is_allowed(key, value, message) -> None:
    with pytest.raises(ParamError, match=message):
        NetParams(**{key: value})


def reference_layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    """LayerNorm written out: ``(x − mean) / sqrt(var + 1e-5) · weight (+ bias)``."""
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    y = (x - mean) / torch.sqrt(var + 1e-5) * weight
    return y if bias is None else y + bias


def reference_linear(x: torch.Tensor, layer: torch.nn.Linear) -> torch.Tensor:
    y = x @ layer.weight.T
    return y if layer.bias is None else y + layer.bias


def reference_block(block, x: torch.Tensor, heads: int) -> torch.Tensor:
    """A GPT block written out with the block's weights: pre-norm, causal attention by an explicit
    mask and softmax per head, the residual adds, an erf-GELU MLP of 4 H."""
    b, t, width = x.shape
    d = width // heads
    h = reference_layer_norm(x, block.norm1.weight, block.norm1.bias)
    qkv = h @ block.attention.qkv.weight.T  # (B, T, 3 H)
    q, k, v = qkv[..., :width], qkv[..., width : 2 * width], qkv[..., 2 * width :]
    future = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
    outs = []
    for i in range(heads):
        cols = slice(i * d, (i + 1) * d)
        scores = q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(d)  # (B, T, T)
        weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        outs.append(weights @ v[..., cols])  # (B, T, d)
    x = x + reference_linear(torch.cat(outs, dim=-1), block.attention.proj)
    h = reference_layer_norm(x, block.norm2.weight, block.norm2.bias)
    hidden = reference_linear(h, block.mlp[0])
    gelu = 0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2)))
    return x + reference_linear(gelu, block.mlp[2])


def perturbed(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Every parameter moved off its initial value (LayerNorms away from the identity, biases
    away from zero), so the reference cannot agree by accident."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("bias", [True, False])
def test_a_block_computes_what_the_written_out_gpt_block_computes(bias: bool) -> None:
    # float64, so that the two orders of summation agree far below the 1e-6 asked
    model = perturbed(transformer(embedding_size=16, hidden_size=16, heads=4, bias=bias)).double()
    x = torch.randn(3, 11, 16, dtype=torch.float64)
    with torch.no_grad():
        for block in model.blocks:
            torch.testing.assert_close(block(x), reference_block(block, x, 4), rtol=0, atol=1e-6)


def test_the_nanogpt_shaped_model_computes_the_written_out_gpt() -> None:
    """Token and learned position embeddings, the blocks, a final LayerNorm and the tied output
    layer, no bias anywhere: the logits of nanoGPT's GPT with the same weights."""
    model = perturbed(
        transformer(
            embedding_size=16, hidden_size=16, heads=4, context=12, tie_weights=True, bias=False
        )
    ).double()
    assert not [n for n, _ in model.named_parameters() if "bias" in n]
    assert model.position is not None
    idx = torch.randint(0, VOCAB_SIZE, (2, 12))
    with torch.no_grad():
        logits, _ = model(idx)
        x = model.embedding.weight[idx] + model.position.weight[:12]
        for block in model.blocks:
            x = reference_block(block, x, 4)
        x = reference_layer_norm(x, model.norm.weight, None)
        expected = x @ model.embedding.weight.T  # (B, T, V): the tied output layer
    assert logits is not None
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-6)


def test_without_bias_no_layer_has_one_and_the_output_starts_uniform() -> None:
    with_bias = transformer()
    model = transformer(bias=False)
    names = [n for n, _ in with_bias.named_parameters() if n.endswith("bias")]
    assert names and not [n for n, _ in model.named_parameters() if n.endswith("bias")]
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for n, p in with_bias.named_parameters() if not n.endswith("bias")
    )
    model.init_output_bias(np.array([2, 2, 2, 3]))  # nothing to set: no error, no bias
    assert model.head.bias is None


def test_only_the_transformer_may_drop_its_biases() -> None:
    check_net_for_model("transformer", NetParams(bias=False))
    for model in ("rnn", "gru", "lstm", "seq2seq"):
        with pytest.raises(ParamError, match=rf"net.bias = false.*model = '{model}'"):
            check_net_for_model(model, NetParams(bias=False))
