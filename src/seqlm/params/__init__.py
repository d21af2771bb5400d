"""Typed parameters: one frozen pydantic model per ``params.yaml`` section, all of them here.

``files`` reads the file; ``data`` holds the data sections' schemas, ``model`` the model's, the
network's, training's, sampling's and the n-gram's, ``evaluate`` the evaluate stage's. Import them from here.

Every section is a :class:`~seqlm.core.schema.Section`: strict types (a string is not a number, a
bool is not an integer; an integer where a float is expected becomes a float; a YAML list becomes a
tuple), no unknown keys, frozen. ``load_section`` reads one section of the file; building a section
directly (``TrainParams(epochs=2)``) runs the same checks. A refusal is a ParamError naming the key,
the bad value and what is allowed, so a typo in ``params.yaml`` (or in ``dvc exp run -S``) fails
loudly instead of being ignored.
"""

from __future__ import annotations

from seqlm.core.schema import Section, choices
from seqlm.params.data import (
    CLEAN_MODES,
    LINE_ENDS,
    RESERVED_CHOICES,
    SCHEMES,
    SHA1_PATTERN,
    SINGLE,
    SUBWORD_TOKENS,
    TOKEN_KINDS,
    CleanMode,
    CleanParams,
    DownloadParams,
    LineEnd,
    Sha1,
    Source,
    TokenizeParams,
    TokenKind,
    VocabParams,
    check_url,
)
from seqlm.params.evaluate import EvaluateParams
from seqlm.params.files import (
    DEFAULT_PARAMS,
    build,
    load_section,
    read_params,
)
from seqlm.params.model import (
    AUTO,
    BRIDGES,
    CELLS,
    DEVICES,
    DROPOUTS,
    MODELS,
    OPTIMIZERS,
    POSITIONS,
    RECURRENT_MODELS,
    SAMPLINGS,
    SCHEDULES,
    Bridge,
    Cell,
    Device,
    Dropout,
    GenerateParams,
    Model,
    NetParams,
    Optimizer,
    Positions,
    Sampling,
    Schedule,
    TrainParams,
    check_model,
    check_net_for_model,
    load_model_name,
)
from seqlm.params.ngram import SMOOTHINGS, NgramParams, Smoothing

SECTIONS: dict[str, type[Section]] = {
    cls.section: cls
    for cls in (
        DownloadParams,
        CleanParams,
        TokenizeParams,
        VocabParams,
        NgramParams,
        GenerateParams,
        NetParams,
        TrainParams,
        EvaluateParams,
    )
}
"""Every ``params.yaml`` section's schema, by section name."""

__all__ = [
    "AUTO",
    "BRIDGES",
    "Bridge",
    "CELLS",
    "CLEAN_MODES",
    "Cell",
    "CleanMode",
    "CleanParams",
    "DEFAULT_PARAMS",
    "DEVICES",
    "DROPOUTS",
    "Device",
    "DownloadParams",
    "EvaluateParams",
    "Dropout",
    "GenerateParams",
    "LINE_ENDS",
    "LineEnd",
    "MODELS",
    "Model",
    "NetParams",
    "NgramParams",
    "OPTIMIZERS",
    "Optimizer",
    "POSITIONS",
    "Positions",
    "RECURRENT_MODELS",
    "RESERVED_CHOICES",
    "SAMPLINGS",
    "SCHEDULES",
    "SCHEMES",
    "SHA1_PATTERN",
    "SECTIONS",
    "SINGLE",
    "SMOOTHINGS",
    "Sampling",
    "Schedule",
    "Sha1",
    "Smoothing",
    "Source",
    "SUBWORD_TOKENS",
    "TOKEN_KINDS",
    "TokenKind",
    "TokenizeParams",
    "TrainParams",
    "VocabParams",
    "build",
    "check_model",
    "check_net_for_model",
    "check_url",
    "choices",
    "load_model_name",
    "load_section",
    "read_params",
]
