"""Where training runs and in what arithmetic: the device and ``train.precision``.

:func:`seqlm.neural.distributed.resolve_setup` decides both for a run, with its processes and CPU
threads, in one place.

* ``fp32``: plain float32 everywhere (the default; the CPU run is bit-identical to before);
* ``bf16``: the forward pass and the loss under ``torch.autocast`` in bfloat16 (CUDA with bf16
  support, or the CPU, where it mainly serves tests); the weights, their gradients and the optimizer
  stay float32, and the range of bf16 equals fp32's, so no loss scaling is needed;
* ``fp16``: autocast in float16 on CUDA with a ``torch.amp.GradScaler``: the loss is scaled up
  before ``backward``, the gradients unscaled before clipping, and a step whose gradients overflowed
  is skipped (the scale is halved; the learning-rate schedule and the weight average do not move).

Validation and the evaluate stage always score in float32 on the training device: the reported
perplexities never depend on the training precision except through the weights.
:func:`seed_everything` seeds the generators and asks for deterministic kernels on either device.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Literal

import torch

from seqlm.core.errors import ParamError

PrecisionName = Literal["fp32", "bf16", "fp16"]
LOW_PRECISION = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """``auto`` → ``cuda`` when available, else ``cpu``; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParamError("train.device = 'cuda' but torch sees no GPU here; use 'auto' or 'cpu'")
    return torch.device(name)  # any other name was refused by TrainParams


def seed_everything(seed: int) -> None:
    """Seed torch's generators (the CPU's and every GPU's) and make the kernels deterministic.

    On the CPU a run is bit-for-bit repeatable. On CUDA, deterministic algorithms are requested
    (cuBLAS with a fixed workspace, set before CUDA starts; cuDNN's LSTM/GRU/RNN kernels stay on,
    with its deterministic algorithms and no autotuning): a rerun on the same GPU, driver and torch
    repeats its numbers; an op torch has no deterministic CUDA kernel for only warns
    (``warn_only``) and is named in the log. GPU and CPU results differ in rounding.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot train in (raises ParamError saying what is allowed)."""
    if precision == "fp16" and device.type != "cuda":
        raise ParamError(
            f"train.precision = 'fp16' needs a CUDA device, but training runs on {device.type!r} "
            f"(fp16 autocast with loss scaling is a GPU feature); on the CPU use 'fp32' or 'bf16'"
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ParamError(
            "train.precision = 'bf16' but this GPU has no bfloat16 support (it needs compute "
            "capability 8.0 or newer); use 'fp16' (with loss scaling) or 'fp32'"
        )


class Precision:
    """The autocast context and (fp16 only) the gradient scaler of one training run."""

    def __init__(self, name: str, device: torch.device) -> None:
        check_precision(name, device)
        self.name = name
        self.device = device
        self.dtype = LOW_PRECISION.get(name)
        self.scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None
        # decided once, not at every step: see _kernels
        self.without_onednn = name == "bf16" and device.type == "cpu" and not cpu_has_bf16_kernels()

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The forward pass and loss of a training batch run in here (nothing for fp32)."""
        if self.dtype is None:
            yield
            return
        with torch.autocast(self.device.type, dtype=self.dtype), self._kernels():
            yield

    @contextlib.contextmanager
    def _kernels(self) -> Iterator[None]:
        """bf16 on a CPU whose oneDNN has no bfloat16 kernels (no AVX-512 BF16 or AMX): oneDNN's
        LSTM primitive refuses bf16 there ("could not create a primitive descriptor"), so the
        forward pass runs without oneDNN (torch's own kernels: the recurrent layers then compute
        in float32). Elsewhere nothing changes."""
        if not self.without_onednn:
            yield
            return
        enabled = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False
        try:
            yield
        finally:
            torch.backends.mkldnn.enabled = enabled


def cpu_has_bf16_kernels() -> bool:
    """Whether this CPU's oneDNN computes in bfloat16 (AVX-512 BF16 or AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
