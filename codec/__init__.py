"""A streaming SoundStream-style neural speech codec (16 kHz, 20 ms frames)."""

from codec.config import CodecConfig
from codec.errors import AudioError, BitstreamError, CodecError, WeightsError

__all__ = ["AudioError", "BitstreamError", "CodecConfig", "CodecError", "WeightsError"]
