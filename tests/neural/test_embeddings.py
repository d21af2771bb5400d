"""The 2-D map of the token embeddings: PCA, one labelled row per token, deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqlm.core.errors import DataError
from seqlm.neural.embeddings import (
    embedding_map_csv,
    embedding_matrix,
    embedding_pca,
    token_label,
)

TOKENS = ("<unk>", "<bos>", " ", "a", "b", "c")


def test_the_map_has_one_row_per_token_in_vocabulary_order_with_readable_labels():
    weights = np.random.default_rng(0).normal(size=(len(TOKENS), 8))
    table = embedding_pca(weights, TOKENS)
    assert table.shape == (len(TOKENS), 3)
    assert table.columns.tolist() == ["token", "x", "y"]
    assert table["token"].tolist() == ["<unk>", "<bos>", "␣", "a", "b", "c"]
    assert token_label("a b") == "a␣b"


def test_the_map_is_the_projection_on_the_first_two_principal_axes():
    weights = np.random.default_rng(1).normal(size=(30, 6)) * np.array([5, 3, 1, 1, 1, 1]) + 7.0
    xy = embedding_pca(weights, [f"t{i}" for i in range(30)])[["x", "y"]].to_numpy()
    centred = weights - weights.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    expected = centred @ axes[:2].T  # (30, 2)
    signs = np.sign((xy * expected).sum(axis=0))  # each axis is defined up to its sign
    np.testing.assert_allclose(xy, expected * signs, atol=1e-10)
    assert xy[:, 0].var() > xy[:, 1].var()


def test_the_same_weights_give_the_same_csv():
    weights = np.random.default_rng(2).normal(size=(len(TOKENS), 4))
    first = embedding_map_csv(embedding_pca(weights, TOKENS))
    second = embedding_map_csv(embedding_pca(weights.copy(), TOKENS))
    assert first == second
    lines = first.splitlines()
    assert lines[0] == "token,x,y" and len(lines) == len(TOKENS) + 1
    assert lines[3].startswith("␣,")


def test_a_model_without_an_embedding_or_a_mismatched_vocabulary_is_refused():
    with pytest.raises(DataError, match="no token embedding"):
        embedding_matrix(torch.nn.Linear(2, 2))
    embedding = torch.nn.Module()
    embedding.embedding = torch.nn.Embedding(6, 3)
    assert embedding_matrix(embedding).shape == (6, 3)
    with pytest.raises(DataError, match="one embedding row per token: 5 tokens"):
        embedding_pca(np.zeros((6, 3)), TOKENS[:5])


def test_a_word_vocabulary_is_mapped_by_its_300_most_frequent_tokens_only():
    weights = np.random.default_rng(3).normal(size=(1000, 8))
    tokens = [f"w{i}" for i in range(1000)]  # vocabulary order: the most frequent first
    table = embedding_pca(weights, tokens)
    assert table["token"].tolist() == tokens[:300]
    first = embedding_pca(weights[:300], tokens[:300])  # the PCA of those rows alone
    assert embedding_map_csv(table) == embedding_map_csv(first)


def test_a_character_vocabulary_is_mapped_whole_as_before():
    weights = np.random.default_rng(4).normal(size=(299, 8))
    tokens = [f"c{i}" for i in range(299)]
    table = embedding_pca(weights, tokens)
    assert len(table) == 299
    assert embedding_map_csv(table) == embedding_map_csv(embedding_pca(weights, tokens, 10**6))
