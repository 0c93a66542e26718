"""Opus (libopus through PyAV) as WebRTC uses it for speech: VoIP mode, 20 ms frames."""

from __future__ import annotations

import fractions

import av
import numpy as np

FRAME_MS = 20


class OpusCodec:
    """A libopus encoder/decoder pair at one bitrate, fed 20 ms frames of float32 mono."""

    def __init__(self, kbps: float, sample_rate: int = 16_000) -> None:
        self.sample_rate = sample_rate
        self.frame = sample_rate * FRAME_MS // 1000
        self.encoder = av.CodecContext.create("libopus", "w")
        self.encoder.sample_rate = sample_rate
        self.encoder.layout = "mono"
        self.encoder.format = "s16"
        self.encoder.bit_rate = int(kbps * 1000)
        self.encoder.time_base = fractions.Fraction(1, sample_rate)
        self.encoder.options = {"application": "voip", "frame_duration": str(FRAME_MS), "vbr": "on"}
        self.encoder.open()
        self.decoder = av.CodecContext.create("libopus", "r")
        self.decoder.sample_rate = sample_rate
        self.decoder.layout = "mono"
        self.decoder.open()
        # libopus decodes at 48 kHz whatever was asked; resample back (stateful, streaming).
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        self._pts = 0

    def encode(self, samples: np.ndarray) -> list[bytes]:
        """One frame of float32 samples -> the packets libopus emits for it."""
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self._pts
        self._pts += pcm.shape[1]
        return [bytes(p) for p in self.encoder.encode(frame)]

    def decode(self, packet: bytes) -> np.ndarray:
        out = [r.to_ndarray().reshape(-1) for f in self.decoder.decode(av.Packet(packet)) for r in self.resampler.resample(f)]
        return np.concatenate(out) if out else np.zeros(0, np.float32)


def opus_roundtrip(audio: np.ndarray, kbps: float, sample_rate: int = 16_000) -> tuple[np.ndarray, int]:
    """Encode and decode a whole signal; returns (decoded aligned to the input, payload bytes)."""
    codec = OpusCodec(kbps, sample_rate)
    hop = codec.frame
    frames = -(-audio.size // hop) + 3  # flush the encoder's lookahead with silence
    padded = np.zeros(frames * hop, np.float32)
    padded[: audio.size] = audio
    decoded, total = [], 0
    for t in range(frames):
        for packet in codec.encode(padded[t * hop : (t + 1) * hop]):
            total += len(packet)
            decoded.append(codec.decode(packet))
    out = np.concatenate(decoded) if decoded else np.zeros(0, np.float32)
    delay = _delay(out, audio)
    return out[delay : delay + audio.size], total


def _delay(decoded: np.ndarray, reference: np.ndarray, max_lag: int = 1000) -> int:
    """Codec delay by cross-correlation (libopus at 16 kHz: 6.5 ms lookahead + resampler)."""
    n = min(reference.size, decoded.size - max_lag)
    if n <= 0:
        return 0
    ref = reference[:n]
    scores = [float(np.dot(decoded[lag : lag + n], ref)) for lag in range(max_lag)]
    return int(np.argmax(scores))
