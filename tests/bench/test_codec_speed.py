"""`codec bench`: every engine and both baselines timed in one run, or a reason given."""

from __future__ import annotations

import pytest

from bench.codec_speed import run_benchmark


@pytest.mark.slow
def test_benchmark_times_every_engine_and_the_baselines() -> None:
    result = run_benchmark(frames=12, warmup=2)
    for key in ("encode_decode_ms", "onnx_encode_decode_ms", "opus_encode_ms"):
        assert result[key]["p50"] > 0, key
    assert result["kbps"] == 6.0 and result["algorithmic_latency_ms"] == 20
    # int8 is refused for the default (soundstream) model: it costs quality
    assert "costs quality" in result["onnx_int8"] and "onnx_int8_encode_ms" not in result
    default = result["default"]
    assert default["model"] == result["model_id"] and default["engine"] == "onnx"
    for key in ("encode_ms", "decode_ms"):
        assert default[key]["p50"] > 0 and default[key]["p99"] >= default[key]["p50"], key
    lyra = result["lyra_tflite"]
    if result["lyra"] is None:  # Lyra's models and runtime are here: timed beside the rest
        assert result["lyra_encode_decode_ms"]["p50"] > 0 and result["lyra_vs_opus_p50"] > 0
        assert lyra["engine"].startswith("tflite") and lyra["model"]
        for key in ("encode_ms", "decode_ms"):
            assert lyra[key]["p50"] > 0 and lyra[key]["p99"] >= lyra[key]["p50"], key
        assert result["default_vs_lyra_tflite_p50"] > 0
    else:
        assert "Lyra" in result["lyra"] and "lyra_encode_ms" not in result
        assert lyra == {"error": result["lyra"]}
