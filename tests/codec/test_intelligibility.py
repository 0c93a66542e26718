"""ASR-based intelligibility: deterministic transcripts, and WER that sees damage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codec.train.intelligibility import word_error_rate

SAMPLE = Path(__file__).resolve().parents[2] / "codec" / "samples" / "speech.wav"


def test_word_error_rate_counts_edits_over_the_reference() -> None:
    assert word_error_rate("the cat sat", "the cat sat") == 0.0
    assert word_error_rate("the cat sat", "the bat sat") == pytest.approx(1 / 3)
    assert word_error_rate("the cat sat", "") == 1.0
    assert word_error_rate("", "") == 0.0
    assert word_error_rate("", "noise") == 1.0


def test_transcripts_are_repeatable_and_noise_costs_words() -> None:
    pytest.importorskip("pocketsphinx")
    from codec.audio_io import load_audio
    from codec.train.intelligibility import Transcriber

    audio, _ = load_audio(SAMPLE, 16_000)
    transcribe = Transcriber()
    said = transcribe(audio)
    assert len(said.split()) >= 10
    assert transcribe(audio) == said  # no state carried from one clip to the next
    noise = np.random.default_rng(0).standard_normal(audio.size).astype(np.float32)
    noisy = audio + 3.0 * np.sqrt(np.mean(audio**2)) * noise  # about -10 dB SNR
    assert word_error_rate(said, transcribe(noisy)) > 0.3
