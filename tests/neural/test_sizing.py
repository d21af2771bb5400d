"""``net.hidden_size: auto`` / ``net.embedding_size: auto``: the rule that sizes a network to its
corpus and training budget (:mod:`seqlm.neural.sizing`), and the train stage that applies it."""

from __future__ import annotations

import pytest

from seqlm.core.errors import ParamError
from seqlm.neural.sizing import PARAMS_PER_TOKEN, auto_sizes, costs, resolve_sizes
from seqlm.params import NetParams

AUTO_NET = NetParams(embedding_size="auto", hidden_size="auto")
TIME_MACHINE = {"train_tokens": 157_384, "vocab_size": 29}  # its train split and vocabulary


def test_the_time_machine_gets_the_lstm_chosen_for_it_on_val():
    sizing = auto_sizes("lstm", AUTO_NET, budget_minutes=0.0, **TIME_MACHINE)
    assert (sizing.embedding_size, sizing.hidden_size) == (128, 512)
    assert sizing.max_macs is None  # no budget: the epochs bound the run


def test_a_small_corpus_in_a_large_alphabet_gets_a_small_network():
    sizing = auto_sizes("lstm", AUTO_NET, 55_000, 2_438, budget_minutes=0.0)
    assert (sizing.embedding_size, sizing.hidden_size) == (64, 64)  # a large vocabulary: E = H
    assert sizing.parameters <= PARAMS_PER_TOKEN * 55_000
    wider = costs("lstm", AUTO_NET, 128, 128, 2_438)[0]
    assert wider > PARAMS_PER_TOKEN * 55_000  # the next width would not fit the data bound


def test_a_shorter_budget_gives_a_narrower_network_and_more_data_a_wider_one():
    corpus = {"train_tokens": 1_000_000, "vocab_size": 67}
    widths = [
        auto_sizes("lstm", AUTO_NET, budget_minutes=m, **corpus).hidden_size for m in (2, 8, 30)
    ]
    assert widths[0] < widths[1] < widths[2]
    for minutes, width in zip((2, 8, 30), widths, strict=True):
        sizing = auto_sizes("lstm", AUTO_NET, budget_minutes=minutes, **corpus)
        assert sizing.macs_per_token <= sizing.max_macs
        assert costs("lstm", AUTO_NET, width + 64, (width + 64) // 4, 67)[1] > sizing.max_macs
    small = auto_sizes("lstm", AUTO_NET, 100_000, 67, budget_minutes=0.0).hidden_size
    large = auto_sizes("lstm", AUTO_NET, 2_000_000, 67, budget_minutes=0.0).hidden_size
    assert small < large


def test_tied_weights_get_equal_sizes_and_a_transformer_a_width_its_heads_divide():
    tied = auto_sizes("lstm", AUTO_NET.replace(tie_weights=True), budget_minutes=0, **TIME_MACHINE)
    assert tied.embedding_size == tied.hidden_size
    net = AUTO_NET.replace(heads=6, positions="rotary", context=128)
    sizing = auto_sizes("transformer", net, budget_minutes=8.0, **TIME_MACHINE)
    assert sizing.hidden_size % 12 == 0 and sizing.embedding_size == sizing.hidden_size


def test_a_size_given_as_a_number_is_kept_and_the_other_follows_it():
    net = NetParams(embedding_size="auto", hidden_size=256)
    sized, sizing = resolve_sizes("lstm", net, 157_384, 30, 0.0)
    assert (sized.hidden_size, sized.embedding_size) == (256, 64) and sizing is not None
    fixed = NetParams(embedding_size=100, hidden_size=300)
    assert resolve_sizes("lstm", fixed, 157_384, 30, 0.0) == (fixed, None)


def test_a_word_level_corpus_gets_about_its_recipes_width():
    ptb = auto_sizes("lstm", AUTO_NET.replace(output="adaptive"), 929_589, 10_001, 14.0)
    assert (ptb.embedding_size, ptb.hidden_size) == (384, 384)  # PTB's recipe: 400 and 400


def test_a_corpus_too_small_for_any_width_gets_the_narrowest():
    assert auto_sizes("gru", AUTO_NET, 500, 40, budget_minutes=1.0).hidden_size == 64


def test_the_schema_takes_auto_and_refuses_other_words():
    assert not AUTO_NET.sized() and NetParams().sized()
    with pytest.raises(ParamError, match=r"hidden_size = 'big'.*integer >= 1 or 'auto'"):
        NetParams(hidden_size="big")
    # the checks that need the sizes wait for them
    NetParams(embedding_size="auto", hidden_size=512, tie_weights=True)
    NetParams(hidden_size="auto", output="adaptive", div_value=1000.0)


def test_the_train_stage_sizes_an_auto_network_and_the_checkpoint_holds_the_sizes(
    tmp_path, tiny_text
):
    from seqlm.data.vocab import load_vocab
    from seqlm.neural.checkpoint import load_checkpoint
    from seqlm.params import load_section
    from stages import train as train_stage
    from tiny_pipeline import write_tiny_pipeline

    paths = write_tiny_pipeline(
        tmp_path, tiny_text * 3, net={"embedding_size": "auto", "hidden_size": "auto"}
    )
    checkpoint = tmp_path / "model" / "model.pt"
    argv = [
        "--params", str(paths["params"]), "--vocab", str(paths["vocab"]),
        "--corpus-dir", str(paths["corpus"]), "--tokens-dir", str(paths["tokens"]),
        "--checkpoint", str(checkpoint), "--metrics", str(tmp_path / "train.json"),
        "--live-dir", str(tmp_path / "live"),
    ]  # fmt: skip
    assert train_stage.main(argv) == 0
    params_net = load_section(NetParams, "net", paths["params"])
    assert not params_net.sized()
    vocab = load_vocab(paths["vocab"])
    model, info = load_checkpoint(checkpoint, vocab, model_name="lstm", net=params_net)
    assert model.embedding.embedding_dim == 16 and model.embedding.num_embeddings == len(vocab)
    # a tiny corpus: the narrowest width, its embedding a quarter of it
    assert sum(p.numel() for p in model.parameters()) == costs(
        "lstm", params_net, 64, 16, len(vocab)
    )[0] + 4 * 2 * 64 + len(vocab)
    with pytest.raises(Exception, match="another net configuration"):
        load_checkpoint(checkpoint, vocab, net=params_net.replace(output_dropout=0.0))
