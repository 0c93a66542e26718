"""The streaming step exported to ONNX Runtime: the same layers, a fraction of eager overhead.

Eager PyTorch spends most of a 20 ms frame's budget dispatching ~400 small operators
(docs/codec.md has the profile). Here the encoder's and decoder's streaming step are traced
once, with every `StreamingModule`'s state as explicit graph inputs and outputs, and run by
onnxruntime on one thread. What the graph need not do is done before tracing or outside it:

- the denoise switch is a constant of each graph (one graph for off, one for on, sharing
  the state), so every block's FiLM folds into its LayerNorm, and its residual scale into
  its last matrix (`ConvNeXtBlock.fold_for_inference`): FiLM's projection, split, multiply
  and adds and the scale's multiply leave every block;
- the encoder's analysis (framing, Hann window, DFT) runs as a NumPy FFT: the DFT as a
  matrix is the largest weight the encoder reads each frame (640 x 642 floats);
- the residual VQ, a dozen matrix-vector products and look-ups, runs in NumPy.

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

import copy
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from codec.model import Codec, Encoder
from codec.modules import ConvNeXtBlock
from codec.modules.framing import CausalFraming
from codec.modules.streaming import StreamingModule

DENOISE_VALUES = (0.0, 1.0)  # the switch is a flag; each value is its own graph
# Bump when the exported graphs change (layers, state layout, folding): caches are per model
# id and this version, so a stale graph is never fed the state of a newer code.
EXPORT_VERSION = 2


def _cache_dir(model_id: str) -> Path:
    root = Path(os.environ.get("SSVOIP_CACHE", Path(tempfile.gettempdir()) / "ssvoip-cache"))
    return root / "onnx" / f"{model_id}-v{EXPORT_VERSION}"


class _SpectrumEncoder(nn.Module):
    """The encoder after its analysis: spectrum frames in, latents out."""

    def __init__(self, encoder: Encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, spec: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.encoder.from_spectrum(spec, cond)


def _for_inference(part: nn.Module, denoise: float) -> nn.Module:
    """A copy of `part` with `denoise` folded into every block (see the module docstring)."""
    part = copy.deepcopy(part).eval()
    for block in part.modules():
        if isinstance(block, ConvNeXtBlock):
            block.fold_for_inference(denoise)
    return part


class _ExplicitState(nn.Module):
    """part(x) with every streaming state passed in and returned (for tracing).

    The analysis framing is not part of an exported graph (NumPy does it), so its state is
    not either."""

    def __init__(self, part: nn.Module, batch_size: int, denoise: float) -> None:
        super().__init__()
        self.part = part
        self.stateful = [m for m in part.modules() if isinstance(m, StreamingModule) and not isinstance(m, CausalFraming)]
        self.keys = [(i, name) for i, m in enumerate(self.stateful) for name in m.initial_state(1, torch.device("cpu"), torch.float32)]
        self.batch_size = batch_size
        self.register_buffer("cond", torch.full((batch_size,), float(denoise)), persistent=False)

    def initial_states(self) -> list[torch.Tensor]:
        return [self.stateful[i].initial_state(self.batch_size, torch.device("cpu"), torch.float32)[name] for i, name in self.keys]

    def forward(self, x: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        for m in self.stateful:
            m._state = {}
        for (i, name), value in zip(self.keys, states):
            self.stateful[i]._state[name] = value
        try:
            y = self.part(x, self.cond)
            return (y, *[self.stateful[i]._state[name] for i, name in self.keys])
        finally:
            for m in self.stateful:
                m._state = None


def _export(part: nn.Module, example: torch.Tensor, batch_size: int, denoise: float, path: Path) -> list[np.ndarray]:
    wrapper = _ExplicitState(_for_inference(part, denoise), batch_size, denoise).eval()
    states = wrapper.initial_states()
    names = [f"state{i}" for i in range(len(states))]
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about Python control flow on shapes
            torch.onnx.export(
                wrapper,
                (example, *states),
                str(tmp),
                dynamo=False,
                input_names=["x", *names],
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
    """Nodes that stay float32: the decoder's matrices, except its trunk's pointwise layers,
    and its convolutions (the up-sampling stages' depthwise ones: as ConvInteger they made the
    decoder step slower, not faster)."""
    import onnx

    if not path.stem.startswith("decoder"):
        return []
    nodes = onnx.load(str(path), load_external_data=False).graph.node
    return [n.name for n in nodes if n.op_type in ("MatMul", "Gemm", "Conv") and not ("/blocks." in n.name and "/pw" in n.name)]


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
    """One half of the codec as ONNX graphs, one per denoise value, sharing one state.

    Inputs and outputs are bound once to preallocated arrays (onnxruntime's I/O binding),
    the state in two sets that swap roles each step: a step allocates nothing but its output
    copy and builds no feed."""

    def __init__(self, part: nn.Module, model_id: str, part_name: str, example: torch.Tensor, batch_size: int, int8: bool) -> None:
        conditioned = any(isinstance(m, ConvNeXtBlock) and m.film is not None for m in part.modules())
        self.sessions = {}
        self.paths: dict[float, Path] = {}
        for denoise in DENOISE_VALUES if conditioned else DENOISE_VALUES[:1]:
            path = _cache_dir(model_id) / f"{part_name}_b{batch_size}_d{denoise:g}.onnx"
            initial = _export(part, example, batch_size, denoise, path)
            self.paths[denoise] = _quantized(path) if int8 else path
            self.sessions[denoise] = _session(self.paths[denoise])
        self.state_names = [f"state{i}" for i in range(len(initial))]
        self.batch_size = batch_size
        self._x = example.numpy().copy()
        out_shape = self.sessions[DENOISE_VALUES[0]].run(["y"], {"x": self._x} | dict(zip(self.state_names, initial)))[0].shape
        self._y = np.zeros(out_shape, np.float32)
        self._sets = ([s.copy() for s in initial], [s.copy() for s in initial])
        self._parity = 0
        self._bindings: dict[object, list] = {}  # per session (bench.int8_layers swaps sessions in)

    @property
    def states(self) -> list[np.ndarray]:
        """The state the next step reads."""
        return self._sets[self._parity]

    def operator_count(self) -> int:
        """Operators onnxruntime runs a step (after its graph optimizations)."""
        import onnx
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
            options.log_severity_level = 3
            ort.InferenceSession(str(self.paths[DENOISE_VALUES[0]]), options, providers=["CPUExecutionProvider"])
            return len(onnx.load(options.optimized_model_filepath).graph.node)

    def session_for(self, denoise: float):
        if len(self.sessions) == 1:
            return self.sessions[DENOISE_VALUES[0]]
        try:
            return self.sessions[float(denoise)]
        except KeyError:
            raise ValueError(f"the ONNX engine takes denoise off (0) or on (1), not {denoise}") from None

    def _binding(self, session, parity: int):
        """The I/O binding of `session` reading state set `parity` and writing the other."""
        import onnxruntime as ort

        if session not in self._bindings:
            pair = []
            for p in (0, 1):
                binding = session.io_binding()
                binding.bind_ortvalue_input("x", ort.OrtValue.ortvalue_from_numpy(self._x))
                binding.bind_ortvalue_output("y", ort.OrtValue.ortvalue_from_numpy(self._y))
                for name, now, after in zip(self.state_names, self._sets[p], self._sets[1 - p]):
                    binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(now))
                    binding.bind_ortvalue_output(f"new_{name}", ort.OrtValue.ortvalue_from_numpy(after))
                pair.append(binding)
            self._bindings[session] = pair
        return self._bindings[session][parity]

    def step(self, x: np.ndarray, denoise: float) -> np.ndarray:
        """One frame: the graph is traced for exactly one (the streaming case)."""
        session = self.session_for(denoise)
        np.copyto(self._x, x)
        session.run_with_iobinding(self._binding(session, self._parity))
        self._parity ^= 1
        return self._y.copy()

    def reset(self, rows: list[int] | np.ndarray | None = None) -> None:
        for state in self.states:
            if rows is None:
                state.fill(0)
            else:
                state[np.asarray(rows)] = 0


class _Analysis:
    """The encoder's framing, Hann window and DFT (`Encoder.forward`'s first line), in NumPy."""

    def __init__(self, encoder: Encoder, batch_size: int) -> None:
        self.window = torch.hann_window(encoder.framing.window, periodic=True).numpy()
        self.past = np.zeros((batch_size, encoder.framing.window - encoder.framing.hop), np.float32)

    def __call__(self, hop: np.ndarray) -> np.ndarray:
        """hop [B, hop] -> spec [B, 1, Re | Im] of the frame ending with it."""
        frame = np.concatenate([self.past, hop], axis=-1)
        self.past = frame[:, hop.shape[-1] :]
        spec = np.fft.rfft(frame * self.window, axis=-1)
        return np.concatenate([spec.real, spec.imag], axis=-1, dtype=np.float32)[:, None]

    def reset(self, rows: list[int] | np.ndarray | None = None) -> None:
        if rows is None:
            self.past.fill(0)
        else:
            self.past[np.asarray(rows)] = 0


class OnnxStreamingEncoder:
    def __init__(self, model: Codec, model_id: str, batch_size: int = 1, int8: bool = False) -> None:
        cfg = model.cfg
        bins = cfg.analysis_window // 2 + 1
        self.analysis = _Analysis(model.encoder, batch_size)
        self.part = _OnnxPart(_SpectrumEncoder(model.encoder), model_id, "encoder", torch.zeros(batch_size, 1, 2 * bins), batch_size, int8)
        quantizer = model.quantizer
        quantizer.eval()
        quantizer.refresh_tables()
        self.codes = quantizer.table.numpy().reshape(cfg.n_quantizers, cfg.codebook_size, -1)
        self.codes_t = np.ascontiguousarray(self.codes.transpose(0, 2, 1))  # [N_q, D, K] for r @ codes^T
        # argmin |r - c|^2 = argmax (r . c - |c|^2 / 2): one operator fewer a layer, same order
        self.half_norms = quantizer.norms.numpy() * np.float32(0.5)
        self.batch_size = batch_size
        self.hop = cfg.hop

    def encode(self, samples: np.ndarray, n_layers: int, denoise: float = 0.0) -> np.ndarray:
        """samples [B, k * hop] float32 -> codes [B, n_layers, k] int64."""
        x = np.ascontiguousarray(samples, dtype=np.float32).reshape(self.batch_size, -1, self.hop)
        latent = np.concatenate([self.part.step(self.analysis(x[:, t]), denoise) for t in range(x.shape[1])], axis=1)
        residual = latent.reshape(-1, self.codes.shape[-1])  # [B * k, D]
        out = np.empty((n_layers, residual.shape[0]), dtype=np.int64)
        for k in range(n_layers):
            score = residual @ self.codes_t[k]
            score -= self.half_norms[k]
            idx = score.argmax(-1)
            residual -= self.codes[k][idx]
            out[k] = idx
        return out.reshape(n_layers, self.batch_size, -1).transpose(1, 0, 2)

    def reset(self, rows: list[int] | None = None) -> None:
        self.analysis.reset(rows)
        self.part.reset(rows)


class OnnxStreamingDecoder:
    def __init__(self, model: Codec, model_id: str, batch_size: int = 1, int8: bool = False) -> None:
        cfg = model.cfg
        self.part = _OnnxPart(model.decoder, model_id, "decoder", torch.zeros(batch_size, 1, cfg.latent_dim), batch_size, int8)
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
