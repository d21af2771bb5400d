"""Dynamic evaluation: each target is scored before anything is learned from it, the adaptation
changes what follows, and the lr and decay are chosen on val only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from small_models import BOS_ID, VOCAB_SIZE, small_model

from seqlm.core.errors import ParamError
from seqlm.data.corpus import SplitData
from seqlm.neural.dynamic import choose_on_val, dynamic_logprobs
from seqlm.neural.evaluation import target_logprobs

ADAPTABLE = [
    "rnn",
    "lstm-2-layers",
    "gru-scratch-adaptive",
    "lstm-adaptive",
    "transformer",
    "transformer-adaptive",
    "transformer-context-5",
]


def long_stream(n: int = 60, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(2, VOCAB_SIZE, size=n).astype(np.int32)


def split(name: str, ids: np.ndarray) -> SplitData:
    return SplitData(name=name, ids=ids, lines=1, characters=ids.size, oov=0)


@pytest.mark.parametrize("update, lr", [("sgd", 1.0), ("rms", 0.01)])
@pytest.mark.parametrize("name", ADAPTABLE)
@pytest.mark.parametrize("changed", [0, 17, 30, 59])
def test_a_token_changes_no_log_probability_of_the_targets_before_it(
    name, changed, update, lr
) -> None:
    model = small_model(name)
    ids = long_stream()
    other = ids.copy()
    other[changed] = 2 + (other[changed] - 1) % (VOCAB_SIZE - 2)  # another id, never <bos>
    assert other[changed] != ids[changed]
    kw = {"lr": lr, "decay": 0.05, "segment": 6, "update": update}
    lp = dynamic_logprobs(model, ids, BOS_ID, **kw)
    lp_other = dynamic_logprobs(model, other, BOS_ID, **kw)
    segment_start = changed - changed % 6
    np.testing.assert_array_equal(lp[:segment_start], lp_other[:segment_start])
    # within its own segment only rounding differs (an adaptive softmax groups targets by cluster)
    np.testing.assert_allclose(lp[:changed], lp_other[:changed], rtol=0, atol=1e-8)
    assert lp[changed] != lp_other[changed]  # the changed target itself
    if changed + 7 < ids.size:  # and, after the update that learned from it, the later ones
        assert not np.allclose(lp[changed + 7 :], lp_other[changed + 7 :])


@pytest.mark.parametrize("update, lr", [("sgd", 1.0), ("rms", 0.01)])
@pytest.mark.parametrize("name", ADAPTABLE)
def test_adapting_changes_the_later_log_probabilities_and_not_the_model(name, update, lr) -> None:
    if name.startswith("transformer") and update == "sgd":
        lr = 0.1  # its gradients are larger: plain SGD at 1.0 overshoots
    model = small_model(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = long_stream()
    static = target_logprobs(model, ids, BOS_ID)
    no_learning = dynamic_logprobs(model, ids, BOS_ID, lr=0.0, decay=0.0, segment=6)
    np.testing.assert_allclose(no_learning, static, rtol=0, atol=1e-6)
    adapted = dynamic_logprobs(model, ids, BOS_ID, lr=lr, decay=0.0, segment=6, update=update)
    np.testing.assert_allclose(adapted[:6], static[:6], rtol=0, atol=1e-6)  # nothing learned yet
    assert np.abs(adapted[6:] - static[6:]).max() > 1e-3
    assert adapted[6:].sum() > static[6:].sum()  # a repetitive stream: learning it helps
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("update", ["sgd", "rms"])
def test_a_full_decay_goes_back_to_the_trained_weights_after_every_segment(update) -> None:
    model = small_model("lstm")
    ids = long_stream()
    static = dynamic_logprobs(model, ids, BOS_ID, lr=0.0, decay=0.0, segment=6)
    reset = dynamic_logprobs(model, ids, BOS_ID, lr=1.0, decay=1.0, segment=6, update=update)
    np.testing.assert_allclose(reset, static, rtol=0, atol=1e-6)


def test_seq2seq_and_bad_settings_are_refused() -> None:
    ids = long_stream()
    with pytest.raises(ParamError, match="one stream"):
        dynamic_logprobs(small_model("seq2seq"), ids, BOS_ID, lr=0.1, decay=0.0, segment=6)
    with pytest.raises(ParamError, match="decay"):
        dynamic_logprobs(small_model("lstm"), ids, BOS_ID, lr=0.1, decay=1.5, segment=6)
    with pytest.raises(ParamError, match="adam"):
        dynamic_logprobs(
            small_model("lstm"), ids, BOS_ID, lr=0.1, decay=0.0, segment=6, update="adam"
        )
    with pytest.raises(ParamError, match="segment"):
        dynamic_logprobs(small_model("lstm"), ids, BOS_ID, lr=0.1, decay=0.0, segment=0)


def test_the_lr_and_decay_are_the_best_on_val_and_test_does_not_change_them() -> None:
    model = small_model("lstm")
    val = split("val", long_stream(48, seed=1))
    grid = {"lrs": (0.01, 0.5, 3.0), "decays": (0.0, 0.2), "segment": 8}
    results = [
        choose_on_val(model, {"val": val, "test": split("test", test)}, BOS_ID, **grid)
        for test in (long_stream(40, seed=2), long_stream(40, seed=3))
    ]
    first, second = results
    assert (first.lr, first.decay, first.grid) == (second.lr, second.decay, second.grid)
    assert first.scores["val"] == second.scores["val"]
    assert first.scores["test"] != second.scores["test"]
    assert len(first.grid) == 6
    best = min(first.grid, key=lambda point: point[2])
    assert (first.lr, first.decay) == best[:2]
    assert first.scores["val"].perplexity == best[2]
    # test is scored from the trained weights, not from the val-adapted ones
    kw = {"lr": first.lr, "decay": first.decay, "segment": 8}
    again = dynamic_logprobs(model, long_stream(40, seed=2), BOS_ID, **kw)
    np.testing.assert_array_equal(first.logprobs["test"], again)


@pytest.mark.parametrize("segment", [1, 2, 5, 7, 16, 33])
@pytest.mark.parametrize("name", ["transformer", "transformer-context-5"])
def test_a_transformer_read_in_segments_sees_the_sliding_windows_context(name, segment) -> None:
    """Without learning, any segment length gives the static sliding-window scores: each target
    is read in the window the static scorer reads it in (the state carries the inputs before)."""
    model = small_model(name)
    ids = long_stream(70)
    static = target_logprobs(model, ids, BOS_ID)
    read = dynamic_logprobs(model, ids, BOS_ID, lr=0.0, decay=0.0, segment=segment)
    np.testing.assert_allclose(read, static, rtol=0, atol=1e-6)


def test_the_grid_reads_only_the_first_tune_tokens_of_val_then_the_pair_scores_all_of_it(
    caplog,
) -> None:
    model = small_model("lstm")
    grid = {"lrs": (0.01, 0.5, 3.0), "decays": (0.0, 0.2), "segment": 8}
    ids = long_stream(48, seed=1)
    test = split("test", long_stream(40, seed=2))
    whole = choose_on_val(model, {"val": split("val", ids), "test": test}, BOS_ID, **grid)
    for tokens in (0, 48, 1000):  # all of val: the same as without a bound
        same = choose_on_val(
            model, {"val": split("val", ids), "test": test}, BOS_ID, tune_tokens=tokens, **grid
        )
        assert (same.lr, same.decay, same.grid, same.scores) == (
            whole.lr,
            whole.decay,
            whole.grid,
            whole.scores,
        )
    tail = ids.copy()
    tail[20:] = long_stream(28, seed=9)  # val changed after the first 20 tokens
    with caplog.at_level("INFO", logger="seqlm.neural.dynamic"):
        bounded = [
            choose_on_val(
                model, {"val": split("val", v), "test": test}, BOS_ID, tune_tokens=20, **grid
            )
            for v in (ids, tail)
        ]
    first, second = bounded
    assert (first.lr, first.decay, first.grid) == (second.lr, second.decay, second.grid)
    for lr, decay, perplexity in first.grid:  # each pair scored on the 20 tokens alone
        lp = dynamic_logprobs(model, ids[:20], BOS_ID, lr=lr, decay=decay, segment=8)
        assert perplexity == pytest.approx(np.exp(-lp.mean()), rel=1e-12)
    kw = {"lr": first.lr, "decay": first.decay, "segment": 8}
    for result, v in ((first, ids), (second, tail)):  # then all of val, and test, by the pair
        np.testing.assert_array_equal(
            result.logprobs["val"], dynamic_logprobs(model, v, BOS_ID, **kw)
        )
        assert result.scores["val"].tokens == 48
        np.testing.assert_array_equal(
            result.logprobs["test"], dynamic_logprobs(model, test.ids, BOS_ID, **kw)
        )
    said = caplog.text
    assert "6 lr/decay pairs on 20 val tokens (the first of 48" in said
    assert "then the chosen pair on val and test: 208 tokens in all" in said  # 6·20 + 48 + 40
    assert "tokens/s, about" in said and "min more" in said


def test_a_named_pass_shows_a_progress_bar_over_its_targets(capsys, monkeypatch) -> None:
    monkeypatch.delenv("SEQLM_NO_PROGRESS", raising=False)
    model = small_model("lstm")
    dynamic_logprobs(model, long_stream(40), BOS_ID, lr=0.1, decay=0.0, segment=8, progress="pass")
    err = capsys.readouterr().err
    assert "pass:" in err and "/40.0" in err and "tok/s" in err
    monkeypatch.setenv("SEQLM_NO_PROGRESS", "1")
    dynamic_logprobs(model, long_stream(40), BOS_ID, lr=0.1, decay=0.0, segment=8, progress="pass")
    assert capsys.readouterr().err == ""
