"""The ``evaluate`` section: dynamic evaluation and the fitted ensemble of the evaluate stage."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from seqlm.core.schema import Allowed, Count, Listed, NonNegativeInt, Positive, Section

Decay = Annotated[float, Field(ge=0, le=1), Allowed("must be in [0, 1] (0 = no decay)")]
MemberName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"),
    Allowed(
        "must be a checkpoint's file name in models/extra/ without '.pt' (letters, digits, _.-)"
    ),
]


class EvaluateParams(Section):
    """The ``evaluate`` section of ``params.yaml`` (:mod:`seqlm.neural.dynamic`, :mod:`seqlm.mixture`).

    * ``dynamic``: also score val and test by dynamic evaluation (recurrent models and the
      transformer; a seq2seq
      model is skipped with a logged reason);
    * ``dynamic_update``: ``sgd`` (``θ ← θ − lr·g``) or ``rms`` (each gradient divided by the root
      of its running mean square over the segments read so far);
    * ``dynamic_lrs``, ``dynamic_decays``: the grid of SGD learning rates and decays toward the
      trained weights; the pair with the best val perplexity scores test;
    * ``dynamic_segment``: the tokens scored before each update;
    * ``dynamic_tune_tokens``: the grid is scored on the first this many val tokens (0 = all of
      val), so its cost does not grow with the corpus; the chosen pair then scores all of val and
      test;
    * ``members``: extra checkpoints (``models/extra/<name>.pt``, trained on the same vocabulary)
      that join the n-gram and the pipeline's model in the ensemble fitted on val by EM.
    """

    section: ClassVar[str] = "evaluate"
    dynamic: bool = False
    dynamic_update: Literal["sgd", "rms"] = "rms"
    dynamic_lrs: Annotated[Listed[Positive], Field(min_length=1)] = (0.001, 0.0015, 0.002)
    dynamic_decays: Annotated[Listed[Decay], Field(min_length=1)] = (0.01, 0.02)
    dynamic_segment: Count = 64
    dynamic_tune_tokens: NonNegativeInt = 100_000
    members: Listed[MemberName] = ()
