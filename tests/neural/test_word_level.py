"""Word-level training with the adaptive softmax, the uniform initialisation and the step schedule."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from seqlm.data.corpus import PreparedData, prepare_text
from seqlm.neural.checkpoint import load_checkpoint
from seqlm.neural.evaluation import score
from seqlm.neural.loop import train
from seqlm.neural.models import build_model
from seqlm.neural.optim import Updater
from seqlm.params import NetParams, TokenizeParams, TrainParams

WORD_80_10_10 = TokenizeParams(
    token="word", train_fraction=0.8, val_fraction=0.1, test_fraction=0.1
)
ADAPTIVE = NetParams(
    embedding_size=16, hidden_size=16, output="adaptive", cutoffs=(8, 30), div_value=2.0
)
WORD_TRAIN = TrainParams(batch_size=4, num_steps=8, epochs=3, lr=0.01, warmup_steps=2)


def word_data(text: str) -> PreparedData:
    data = prepare_text(text, WORD_80_10_10)
    assert len(data.vocab) > ADAPTIVE.cutoffs[-1]  # every cluster has ids
    return data


@pytest.mark.parametrize("model", ["lstm", "seq2seq", "transformer"])
def test_an_adaptive_softmax_model_learns_a_tiny_word_corpus(tiny_text: str, model: str) -> None:
    data = word_data(tiny_text)
    ids = data.splits["train"].ids
    torch.manual_seed(0)
    net = build_model(model, ADAPTIVE.replace(window=8), len(data.vocab), 1)
    net.init_output_bias(ids)
    params = WORD_TRAIN.replace(lr=0.03)
    updater, rng, epoch_losses = Updater(net, params, 40), random.Random(0), []
    net.train()
    for _ in range(8):
        state, losses = None, []
        for batch in net.training_batches(ids, 1, params, rng):
            loss, _, state = net.batch_loss(batch, state)
            updater.update(loss)
            losses.append(loss.item())
        epoch_losses.append(np.mean(losses))
    assert epoch_losses[-1] < 0.9 * epoch_losses[0], epoch_losses
    assert epoch_losses[0] < np.log(len(data.vocab))  # it starts at the unigrams, not uniform


def test_an_adaptive_checkpoint_scores_what_training_reported(tmp_path, tiny_text: str) -> None:
    data = word_data(tiny_text)
    params = WORD_TRAIN.replace(schedule="step", decay_after=1, warmup_steps=0)
    net = ADAPTIVE.replace(init_range=0.1)
    ckpt, splits = tmp_path / "model.pt", data.splits
    result = train(
        "lstm", net, params, data.vocab, splits["train"], splits["val"], checkpoint_path=ckpt
    )
    assert [r.lr for r in result.history] == [0.01, 0.005, 0.0025]  # halved after epoch 1
    loaded, info = load_checkpoint(ckpt, data.vocab, model_name="lstm", net=net)
    assert info.net.cutoffs == (8, 30)
    bos = data.vocab.id_of("<bos>")
    assert score(loaded, splits["val"], bos)[0].perplexity == pytest.approx(
        result.best_val_perplexity, rel=1e-12
    )
