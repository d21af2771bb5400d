"""A 2-D map of a model's token embeddings: PCA of the embedding matrix, one point per token.

The evaluate stage writes it as a CSV (``token,x,y``) that ``dvc.yaml`` declares as a scatter plot
labelled with the tokens (``.dvc/plots/scatter_text.json``). Tokens that would be invisible as a
label are shown by a visible stand-in: the space character as ``␣``.

The projection is deterministic: scikit-learn's full SVD, with its sign convention for each
component, so the same weights always give the same map. A word vocabulary is cut to its first
:data:`MAX_TOKENS` entries (``<unk>``, the reserved tokens, then the most frequent train tokens:
the vocabulary's order), which are also the rows the PCA is fitted on; a character vocabulary is
shorter and mapped whole.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA

from seqlm.core.errors import DataError

SPACE_LABEL = "␣"  # U+2423 OPEN BOX: the space token as a visible label
COLUMNS = ("token", "x", "y")
MAX_TOKENS = 300
"""The most tokens the map shows: the first ones of the vocabulary (the most frequent)."""


def token_label(token: str) -> str:
    """A token as a readable plot label: spaces become ``␣``."""
    return token.replace(" ", SPACE_LABEL)


def embedding_matrix(model: torch.nn.Module) -> np.ndarray:
    """The model's input embedding matrix, ``(V, E)`` float64 (row ``i`` embeds token id ``i``)."""
    embedding = getattr(model, "embedding", None)
    if not isinstance(embedding, torch.nn.Embedding):
        raise DataError(
            f"{type(model).__name__} has no token embedding (an nn.Embedding 'embedding')"
        )
    return embedding.weight.detach().cpu().double().numpy()


def embedding_pca(
    weights: np.ndarray, tokens: Sequence[str], max_tokens: int = MAX_TOKENS
) -> pd.DataFrame:
    """The first two principal components of each token's embedding: ``token, x, y``, vocab order,
    for the first ``max_tokens`` tokens only (the PCA fitted on those rows)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != len(tokens):
        raise DataError(
            f"need one embedding row per token: {len(tokens)} tokens, weights of shape {w.shape}"
        )
    w, tokens = w[:max_tokens], tokens[:max_tokens]
    if min(w.shape) < 2:
        raise DataError(f"a 2-D map needs at least 2 tokens and 2 dimensions, got shape {w.shape}")
    xy = PCA(n_components=2, svd_solver="full", random_state=0).fit_transform(w)  # (V, 2)
    return pd.DataFrame({"token": [token_label(t) for t in tokens], "x": xy[:, 0], "y": xy[:, 1]})


def embedding_map_csv(table: pd.DataFrame) -> str:
    """The map as CSV: a ``token,x,y`` header, then one row per token, coordinates to 6 decimals."""
    return table.loc[:, list(COLUMNS)].to_csv(index=False, float_format="%.6f", lineterminator="\n")
