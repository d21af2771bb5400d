"""Exceptions raised where input enters seqlm.

Every message names the bad value and, where there is a closed set of choices, what is allowed.
"""


class SeqlmError(Exception):
    """Base class of every error seqlm raises on purpose."""


class ParamError(SeqlmError, ValueError):
    """A parameter in ``params.yaml`` is missing, unknown, mistyped or out of range."""


class DownloadError(SeqlmError):
    """The corpus could not be fetched or failed its checksum."""


class DataError(SeqlmError, ValueError):
    """An input file or artifact is malformed (empty corpus, unknown vocab format, ...)."""
