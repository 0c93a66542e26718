"""Building blocks of the codec, each with explicit streaming state."""

from codec.modules.blocks import ConvNeXtBlock
from codec.modules.conv import CausalDepthwiseConv1d
from codec.modules.film import FiLM
from codec.modules.framing import CausalFraming, OverlapAdd
from codec.modules.streaming import StreamingModule, reset_streams, streaming

__all__ = ["CausalDepthwiseConv1d", "CausalFraming", "ConvNeXtBlock", "FiLM", "OverlapAdd", "StreamingModule", "reset_streams", "streaming"]
