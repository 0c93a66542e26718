"""Intelligibility by speech recognition: how many words an ASR gets wrong on decoded audio.

PESQ and STOI are proxies; the question a call asks is whether the words survive. Each clip
is transcribed once as it is and once after the codec, by pocketsphinx's bundled US-English
model (offline, deterministic), and the word error rate of the second transcript against
the first is the codec's. The reference is the recogniser's own reading of the original,
not a human transcript, so the figure counts the words the codec changed, not the
recogniser's mistakes (those it makes on the original cancel). English clips only.
"""

from __future__ import annotations

import numpy as np

from codec.errors import CodecError

RATE = 16_000


class Transcriber:
    """pocketsphinx on 16 kHz mono float audio.

    A fresh decoder for every clip (0.3 s): a reused one carries its cepstral-mean estimate
    from one utterance to the next, so the same audio read twice gave transcripts 4 % apart.
    """

    def __init__(self) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise CodecError("--asr needs the pocketsphinx package (pip install -e '.[asr]')") from None
        self._new_decoder = lambda: Decoder(samprate=RATE, loglevel="FATAL")

    def __call__(self, audio: np.ndarray) -> str:
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        decoder = self._new_decoder()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr.strip() if hyp is not None else ""


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over the reference's length (1.0 if it has no words and the
    hypothesis has some, 0.0 if both are empty)."""
    import jiwer

    if not reference.split():
        return 0.0 if not hypothesis.split() else 1.0
    return float(jiwer.wer(reference, hypothesis if hypothesis.split() else ""))
