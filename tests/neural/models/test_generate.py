"""Generation warms up on a prefix, then predicts; sampling is seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from small_models import BOS_ID, VOCAB_SIZE, small_model

from seqlm.data.vocab import Vocab
from seqlm.neural.evaluation import target_logprobs
from seqlm.neural.generate import generate_ids, generate_samples, samples_markdown
from seqlm.neural.models import build_model
from seqlm.params import GenerateParams, NetParams

VOCAB = Vocab(("<unk>", "<bos>", " ", "e", "t", "a", "h", "i", "m"), (0, 0, 5, 4, 3, 3, 2, 2, 1))


def char_model(name: str = "lstm", **net):
    torch.manual_seed(0)
    net_params = NetParams(embedding_size=8, hidden_size=16, **net)
    return build_model(name, net_params, len(VOCAB), VOCAB.id_of("<bos>")).eval()


@pytest.mark.parametrize("name", ["lstm", "seq2seq", "transformer"])
def test_the_same_seed_gives_the_same_samples(name: str) -> None:
    model = char_model(name, window=4, context=6)  # 15 new tokens: past the transformer's context
    params = GenerateParams(prefixes=("time", ""), length=15, temperature=1.0, top_k=0, seed=3)
    a = generate_samples(model, VOCAB, "char", params)
    b = generate_samples(model, VOCAB, "char", params)
    assert a == b
    assert [s.prefix for s in a] == ["time", "time", "", ""]
    assert all(len(s.continuation.replace("<unk>", "?")) == 15 for s in a)  # 15 tokens
    other = generate_samples(
        model, VOCAB, "char", GenerateParams(prefixes=("time", ""), length=15, seed=4)
    )
    assert [s.continuation for s in other if s.method != "greedy"] != [
        s.continuation for s in a if s.method != "greedy"
    ]


def test_greedy_decoding_takes_the_most_likely_token_each_step() -> None:
    model = small_model("gru")
    prefix = [2, 3, 4]
    out = generate_ids(model, prefix, 6, BOS_ID, greedy=True)
    context = [BOS_ID, *prefix]
    for token in out:
        logits, _ = model.stream(torch.tensor([context]), None)
        assert token == int(logits[0, -1].argmax())
        context.append(token)


def test_samples_never_contain_bos_and_top_k_limits_the_choice() -> None:
    model = small_model("lstm")
    rng = np.random.default_rng(0)
    out = generate_ids(model, [2], 200, BOS_ID, greedy=False, rng=rng, top_k=1, banned_ids=[BOS_ID])
    greedy = generate_ids(model, [2], 200, BOS_ID, greedy=True, banned_ids=[BOS_ID])
    assert out == greedy  # top-1 sampling is greedy
    sampled = generate_ids(
        model, [2], 300, BOS_ID, greedy=False, rng=rng, temperature=2.0, banned_ids=[BOS_ID]
    )
    assert BOS_ID not in sampled


def test_a_seq2seq_model_generates_across_window_boundaries_like_it_scores() -> None:
    model = small_model("seq2seq")  # window 5: the 15 targets after <bos> span three windows
    prefix = [2, 3]
    out = generate_ids(model, prefix, 13, BOS_ID, greedy=True)
    assert len(out) == 13
    for i, token in enumerate(out):  # each token is the scorer's most likely one at its position
        stream = [*prefix, *out[:i]]
        scored = [
            target_logprobs(model, np.array([*stream, v]), BOS_ID)[-1] for v in range(VOCAB_SIZE)
        ]
        assert token == int(np.argmax(scored)), f"token {i} (position {len(stream)})"
    sampled = generate_ids(model, prefix, 13, BOS_ID, greedy=False, rng=np.random.default_rng(1))
    assert sampled != out  # sampling does draw, and from the same distributions:
    streamed, _ = model.stream(torch.tensor([[BOS_ID, *prefix, *sampled[:-1]]]), None)
    read = torch.log_softmax(streamed[0].double(), dim=-1)
    targets = torch.tensor([*prefix, *sampled])
    np.testing.assert_allclose(
        read.gather(1, targets[:, None])[:, 0].detach().numpy(),
        target_logprobs(model, np.array([*prefix, *sampled]), BOS_ID),
        rtol=0,
        atol=1e-6,
    )


def test_prefixes_are_cleaned_and_samples_read_as_markdown() -> None:
    model = char_model()
    params = GenerateParams(prefixes=("The  TIME!",), length=5, seed=0)
    samples = generate_samples(model, VOCAB, "char", params)
    assert samples[0].prefix == "the time"
    text = samples_markdown("Neural model (lstm)", samples, "char")
    assert text.startswith("## Neural model (lstm)")
    assert (
        "**the time**" in text and "greedy" in text and "sampled (temperature 1, top-k off)" in text
    )


def test_each_prefix_is_sampled_independently_of_the_others() -> None:
    model = char_model()
    alone = generate_samples(
        model, VOCAB, "char", GenerateParams(prefixes=("time",), length=12, seed=5)
    )
    after = generate_samples(
        model, VOCAB, "char", GenerateParams(prefixes=("the", "time"), length=12, seed=5)
    )
    assert after[2:] == alone


def test_the_neural_and_the_ngram_samples_read_a_prefix_the_same_way() -> None:
    from seqlm.ngram import count_stream, fit_ngram
    from seqlm.ngram.baseline import sample_texts

    params = GenerateParams(prefixes=("The  TIME!",), length=5, seed=0)
    neural = generate_samples(char_model(), VOCAB, "char", params)
    train = VOCAB.encode("the time machine")
    ngram = fit_ngram(count_stream(train, len(VOCAB), 2, VOCAB.id_of("<bos>")), 2)
    ngram_text = sample_texts(ngram, VOCAB, "char", params)
    assert neural[0].prefix == "the time"
    assert "== prefix: 'The  TIME!' ==\nthe time" in ngram_text
