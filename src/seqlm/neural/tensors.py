"""Trees of tensors: a model's recurrent state, or what a checkpoint carries.

A state is a tensor, a tuple or list of states (an LSTM's ``(h, c)``, a stack of layers' states),
or any other value kept as it is (``None``, a transformer's position count). :func:`map_tensors`
rebuilds such a tree with a function applied to each tensor; :func:`detached` cuts it from the
autograd graph (truncated backpropagation through time) and :func:`moved` puts it on a device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def map_tensors(tree: T, fn: Callable[[torch.Tensor], torch.Tensor]) -> T:
    """``tree`` with ``fn`` applied to each tensor in it; tuples and lists are rebuilt as their
    own type, every other value is kept as it is."""
    if isinstance(tree, torch.Tensor):
        return fn(tree)  # type: ignore[return-value]
    if isinstance(tree, tuple | list):
        return type(tree)(map_tensors(item, fn) for item in tree)  # type: ignore[return-value]
    return tree


def detached(tree: T) -> T:
    """``tree`` cut from the graph: each tensor detached (same values, no history)."""
    return map_tensors(tree, torch.Tensor.detach)


def moved(tree: T, device: torch.device | str) -> T:
    """``tree`` with each tensor detached and on ``device``."""

    def move(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(device)

    return map_tensors(tree, move)
