"""`codec bench`: every engine and both baselines timed in one run, or a reason given."""

from __future__ import annotations

import pytest

from bench.codec_speed import run_benchmark


@pytest.mark.slow
def test_benchmark_times_every_engine_and_the_baselines() -> None:
    result = run_benchmark(frames=12, warmup=2)
    for key in ("encode_decode_ms", "onnx_encode_decode_ms", "onnx_int8_encode_decode_ms", "opus_encode_ms"):
        assert result[key]["p50"] > 0, key
    assert result["kbps"] == 6.0 and result["algorithmic_latency_ms"] == 20
    if result["lyra"] is None:  # Lyra's models and runtime are here: timed beside the rest
        assert result["lyra_encode_decode_ms"]["p50"] > 0 and result["lyra_vs_opus_p50"] > 0
    else:
        assert "Lyra" in result["lyra"] and "lyra_encode_ms" not in result
