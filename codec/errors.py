"""Errors the CLI reports as one line (never a traceback)."""


class CodecError(Exception):
    """A problem with the user's input that has a clear one-line explanation."""


class AudioError(CodecError):
    """Audio that cannot be read, or that makes no sense to encode."""


class BitstreamError(CodecError):
    """A frame payload or a container file that is corrupt, truncated or foreign."""


class WeightsError(CodecError):
    """Weights that are missing, corrupt, or do not fit this version of the code."""
