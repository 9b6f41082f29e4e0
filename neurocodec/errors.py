"""neurocodec's exceptions. Each carries a one-line message fit to show a user as it is.

All derive from NeurocodecError; FormatError and InputError are also ValueErrors, so code that
catches ValueError for bad data keeps working. All are importable from `neurocodec` itself.
"""


class NeurocodecError(Exception):
    """Base of every error neurocodec raises on purpose."""


class FormatError(NeurocodecError, ValueError):
    """The data is not a .ncd file, or it is truncated, corrupted or of an unknown version."""


class CodecNotFound(NeurocodecError):
    """No installed codec has the requested name."""


class WeightsMismatch(NeurocodecError):
    """The file was encoded with weights other than the installed ones."""


class InputError(NeurocodecError, ValueError):
    """The input cannot be coded by the chosen codec (wrong modality, mode, size, quality)."""


class IntegrityError(NeurocodecError):
    """A decode produced output whose checksum differs from the original's."""


class LimitError(NeurocodecError):
    """The input or file is larger than a configured limit (see neurocodec.limits)."""
