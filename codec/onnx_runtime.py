"""The streaming step exported to ONNX Runtime: the same layers, a fraction of eager overhead.

Eager PyTorch spends most of a 20 ms frame's budget dispatching ~400 small operators
(docs/codec.md has the profile). Here the encoder's and decoder's streaming step are traced
once, with every `StreamingModule`'s state as explicit graph inputs and outputs, and run by
onnxruntime on one thread. The residual VQ, a handful of table look-ups, runs in NumPy.

`OnnxStreamingEncoder` / `OnnxStreamingDecoder` have the interface of `codec.streaming`'s
classes and give the same output within float rounding (tests/codec/test_onnx_runtime.py).
With `int8=True` matrix weights are quantized to int8 (onnxruntime's dynamic quantization,
per output channel): a quarter of the memory traffic, which is what a one-frame step is bound
by. All of the encoder's, and of the decoder only the trunk's pointwise layers (`blocks.*.pw*`,
most of its weights): with the decoder's up-sampling stages and head in int8 too, the bundled
sample's log-mel distance went from 0.292 to 1.055 (PESQ-WB 1.33 -> 1.02); with them in float32
it is 0.297 (PESQ-WB 1.36; `python -m bench.int8_layers`). `python -m codec eval --engine
onnx-int8` measures it on any clips.
Export takes a few seconds and is cached per model id.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from codec.model import Codec
from codec.modules.streaming import StreamingModule


def _cache_dir(model_id: str) -> Path:
    root = Path(os.environ.get("SSVOIP_CACHE", Path(tempfile.gettempdir()) / "ssvoip-cache"))
    return root / "onnx" / model_id


class _ExplicitState(nn.Module):
    """part(x, cond) with every streaming state passed in and returned (for tracing)."""

    def __init__(self, part: nn.Module, batch_size: int) -> None:
        super().__init__()
        self.part = part
        self.stateful = [m for m in part.modules() if isinstance(m, StreamingModule)]
        self.keys = [(i, name) for i, m in enumerate(self.stateful) for name in m.initial_state(1, torch.device("cpu"), torch.float32)]
        self.batch_size = batch_size

    def initial_states(self) -> list[torch.Tensor]:
        return [self.stateful[i].initial_state(self.batch_size, torch.device("cpu"), torch.float32)[name] for i, name in self.keys]

    def forward(self, x: torch.Tensor, cond: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        for m in self.stateful:
            m._state = {}
        for (i, name), value in zip(self.keys, states):
            self.stateful[i]._state[name] = value
        try:
            y = self.part(x, cond)
            return (y, *[self.stateful[i]._state[name] for i, name in self.keys])
        finally:
            for m in self.stateful:
                m._state = None


def _export(part: nn.Module, example: torch.Tensor, batch_size: int, path: Path) -> list[np.ndarray]:
    wrapper = _ExplicitState(part, batch_size).eval()
    states = wrapper.initial_states()
    names = [f"state{i}" for i in range(len(states))]
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about Python control flow on shapes
            torch.onnx.export(
                wrapper,
                (example, torch.zeros(batch_size), *states),
                str(tmp),
                dynamo=False,
                input_names=["x", "cond", *names],
                output_names=["y", *[f"new_{n}" for n in names]],
            )
        tmp.replace(path)
    return [s.numpy() for s in states]


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _int8_sensitive(path: Path) -> list[str]:
    """Matrix nodes that stay float32: the decoder's, except its trunk's pointwise layers."""
    import onnx

    if not path.stem.startswith("decoder"):
        return []
    nodes = onnx.load(str(path), load_external_data=False).graph.node
    return [n.name for n in nodes if n.op_type in ("MatMul", "Gemm") and not ("/blocks." in n.name and "/pw" in n.name)]


def _quantized(path: Path) -> Path:
    """int8 weights, per output channel; activations stay float (dynamic quantization)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = path.with_name(path.stem + "_int8-trunk.onnx")
    if not out.exists():
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        quantize_dynamic(
            str(path), str(tmp), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=_int8_sensitive(path),
        )
        tmp.replace(out)
    return out


class _OnnxPart:
    def __init__(self, model: Codec, model_id: str, part_name: str, example: torch.Tensor, batch_size: int, int8: bool) -> None:
        path = _cache_dir(model_id) / f"{part_name}_b{batch_size}.onnx"
        self.initial = _export(getattr(model, part_name), example, batch_size, path)
        if int8:
            path = _quantized(path)
        self.states = [s.copy() for s in self.initial]
        self.session = _session(path)
        self.state_names = [f"state{i}" for i in range(len(self.states))]
        self.batch_size = batch_size
        self._cond = np.zeros(batch_size, np.float32)

    def step(self, x: np.ndarray, denoise: float) -> np.ndarray:
        """One frame: the graph is traced for exactly one (the streaming case)."""
        self._cond.fill(denoise)
        feed = {"x": x, "cond": self._cond} | dict(zip(self.state_names, self.states))
        y, *self.states = self.session.run(None, feed)
        return y

    def reset(self, rows: list[int] | np.ndarray | None = None) -> None:
        for state in self.states:
            if rows is None:
                state.fill(0)
            else:
                state[np.asarray(rows)] = 0


class OnnxStreamingEncoder:
    def __init__(self, model: Codec, model_id: str, batch_size: int = 1, int8: bool = False) -> None:
        cfg = model.cfg
        self.part = _OnnxPart(model, model_id, "encoder", torch.zeros(batch_size, cfg.hop), batch_size, int8)
        quantizer = model.quantizer
        quantizer.eval()
        quantizer.refresh_tables()
        self.codes = quantizer.table.numpy().reshape(cfg.n_quantizers, cfg.codebook_size, -1)
        self.codes_t = np.ascontiguousarray(self.codes.transpose(0, 2, 1))  # [N_q, D, K] for r @ codes^T
        self.norms = quantizer.norms.numpy()
        self.batch_size = batch_size
        self.hop = cfg.hop

    def encode(self, samples: np.ndarray, n_layers: int, denoise: float = 0.0) -> np.ndarray:
        """samples [B, k * hop] float32 -> codes [B, n_layers, k] int64."""
        x = np.ascontiguousarray(samples, dtype=np.float32).reshape(self.batch_size, -1, self.hop)
        latent = np.concatenate([self.part.step(x[:, t], denoise) for t in range(x.shape[1])], axis=1)
        residual = latent.reshape(-1, self.codes.shape[-1])  # [B * k, D]
        out = np.empty((n_layers, residual.shape[0]), dtype=np.int64)
        for k in range(n_layers):
            idx = (self.norms[k] - 2.0 * (residual @ self.codes_t[k])).argmin(-1)
            residual -= self.codes[k][idx]
            out[k] = idx
        return out.reshape(n_layers, self.batch_size, -1).transpose(1, 0, 2)

    def reset(self, rows: list[int] | None = None) -> None:
        self.part.reset(rows)


class OnnxStreamingDecoder:
    def __init__(self, model: Codec, model_id: str, batch_size: int = 1, int8: bool = False) -> None:
        cfg = model.cfg
        self.part = _OnnxPart(model, model_id, "decoder", torch.zeros(batch_size, 1, cfg.latent_dim), batch_size, int8)
        model.quantizer.eval()
        model.quantizer.refresh_tables()
        self.table = model.quantizer.table.numpy()
        self.codebook_size = cfg.codebook_size
        self.batch_size = batch_size

    def decode(self, codes: np.ndarray, layer_counts: np.ndarray | None = None, denoise: float = 0.0) -> np.ndarray:
        """codes [B, K, k] -> samples [B, k * hop]; layer_counts [B, k] picks layers per frame."""
        codes = np.asarray(codes)
        layers = codes.shape[1]
        offsets = (np.arange(layers) * self.codebook_size)[None, :, None]
        vectors = self.table[codes + offsets]  # [B, K, k, D]
        if layer_counts is not None:
            keep = np.arange(layers)[None, :, None] < np.asarray(layer_counts)[:, None, :]
            vectors = vectors * keep[..., None]
        latent = vectors.sum(1, dtype=np.float32)  # [B, k, D]
        return np.concatenate([self.part.step(latent[:, t : t + 1], denoise) for t in range(latent.shape[1])], axis=1)

    def reset(self, rows: list[int] | None = None) -> None:
        self.part.reset(rows)
