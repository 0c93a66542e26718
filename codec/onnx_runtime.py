"""The streaming step exported to ONNX Runtime: the same layers, a fraction of eager overhead.

Eager PyTorch spends most of a 20 ms frame's budget dispatching hundreds of small operators
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
most of its weights): the decoder's up-sampling stages and head carry the waveform detail and
lose it under int8 (docs/codec.md, from `python -m bench.int8_layers`). `python -m codec eval
--engine onnx-int8` measures it on any clips.
The soundstream family (the default model) is exported differently: as time-major matrix
products (`_SoundStreamStep`, below), with its RVQ's 46 small codebooks searched through a
table of cross products; `int8=True` is refused for it (a CodecError): dynamic int8 cost it
quality and made the encoder step slower (docs/models.md, "Engines"). Its denoise switch (the
encoder's `FlagGatedResidual`s) is in the switched-on graph alone: the switched-off graph is
the base model's, op for op, so the switch off costs nothing and changes no bit. A switch with a
temporal context (`codec.modules.temporal_context`) runs that context's convolutions in both
graphs (their state follows the signal whatever the flag, as in PyTorch); the base's ops and
their output are untouched by them.
Export takes a few seconds and is cached per model id.
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from codec.errors import CodecError
from codec.model import Codec, Encoder
from codec.modules import ConvNeXtBlock
from codec.modules.causal_conv import CausalConv1d
from codec.modules.film import FlagGatedResidual
from codec.modules.framing import CausalFraming
from codec.modules.streaming import StreamingModule

if TYPE_CHECKING:
    from codec.soundstream import SoundStreamDecoder, SoundStreamEncoder
    from codec.weights import AnyCodec

_CROSS_TABLE_BYTES = 8 << 20  # the cross-product quantizer search for tables up to this size
DENOISE_VALUES = (0.0, 1.0)  # the switch is a flag; each value is its own graph
# Bump when the exported graphs change (layers, state layout, folding): caches are per model
# id and this version, so a stale graph is never fed the state of a newer code.
EXPORT_VERSION = 4


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

    cond: torch.Tensor

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
        given: list[dict[str, torch.Tensor]] = [{} for _ in self.stateful]
        for m, state in zip(self.stateful, given):
            m._state = state  # each layer's `remember` writes into this very dict
        for (i, name), value in zip(self.keys, states):
            given[i][name] = value
        try:
            y = self.part(x, self.cond)
            return (y, *[given[i][name] for i, name in self.keys])
        finally:
            for m in self.stateful:
                m._state = None


# --- The soundstream family: the streaming step as time-major matrix products -------------
#
# Exported as the eager modules are, this family's step is dozens of ORT Conv / ConvTranspose
# nodes on [B, C, T] tensors of a few steps, where onnxruntime's convolutions spend most of their
# time on set-up (im2col, NCHWc reorders), not arithmetic. `_SoundStreamStep` rebuilds the same
# arithmetic from the module's weights for inference only: every activation is a 2-D
# [T * B, C] matrix (row t * B + b), every causal convolution (and transposed convolution) is
# one Gather of its taps from (state ++ input) and one Gemm, LeakyReLU fuses into the Gemm
# before it, and each 64- and 128-channel residual unit's depthwise and pointwise convolutions
# fold into one 3-tap Gemm (at 256 channels the folded matrix is 3x the weights to read, which
# costs more than the separate depthwise product saves). A transposed convolution with kernel
# m * stride keeps its last m - 1 inputs as state instead of the output spill (zero either way
# at a fresh stream), which makes it a causal convolution with stride * C_out outputs per step.
# Figures: docs/codec.md ("ONNX engine, soundstream family"; `python -m codec bench --json`).

_FOLD_MAX_CHANNELS = 128  # residual units up to this width fold depthwise into pointwise


class _TimeConv(nn.Module):
    """y[t * sub + r] = sum_j X[t * stride + j * dilation] @ W_j[:, r] + bias over X = state ++ x,
    on [T * B, C] rows; grouped weights as one batched product when the kernel has several taps
    (block-diagonal dense weights would read `groups` times the memory)."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, taps: torch.Tensor, bias: torch.Tensor, stride: int, dilation: int, groups: int, batch: int, sub: int = 1) -> None:
        super().__init__()
        k, cin, cout_all = taps.shape
        self.k, self.stride, self.dilation, self.sub, self.cin, self.batch = k, stride, dilation, sub, cin, batch
        self.cout = cout_all // sub
        self.context = (k - 1) * dilation + 1 - stride
        self.groups = groups
        self.batched = groups > 1 and k > 1
        if self.batched:
            cin_g, cout_g = cin // groups, self.cout // groups
            w = taps.reshape(k, groups, cin_g, sub, groups, cout_g)
            blocks = torch.stack([w[:, g, :, :, g, :] for g in range(groups)])
            self.register_buffer("weight", blocks.reshape(groups, k * cin_g, sub * cout_g).contiguous())
        else:
            self.register_buffer("weight", taps.reshape(k * cin, cout_all).contiguous())
        self.register_buffer("bias", bias.detach().clone())

    def state_shape(self) -> tuple[int, int]:
        return (self.context * self.batch, self.cin)

    def forward(self, x: torch.Tensor, past: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        b = self.batch
        steps = x.shape[0] // b
        if self.context:
            assert past is not None, "a layer with context is given its past"
            full = torch.cat([past, x], 0)
        else:
            full = x
        new = full[steps * b :] if self.context else None
        t_out = steps // self.stride
        if self.k == 1 and self.stride == 1:
            cols = full
        else:
            idx = [(t * self.stride + j * self.dilation) * b + i for t in range(t_out) for i in range(b) for j in range(self.k)]
            cols = full.index_select(0, torch.tensor(idx)).reshape(t_out * b, self.k * self.cin)
        if self.batched:
            g = self.groups
            cols = cols.reshape(t_out * b, self.k, g, self.cin // g).permute(2, 0, 1, 3).reshape(g, t_out * b, -1)
            y = torch.matmul(cols, self.weight).reshape(g, t_out, b, self.sub, self.cout // g).permute(1, 3, 2, 0, 4)
            return y.reshape(t_out * self.sub * b, self.cout) + self.bias, new
        if self.sub > 1:
            y = torch.matmul(cols, self.weight)
            if b > 1:
                y = y.reshape(t_out, b, self.sub, self.cout).transpose(1, 2)
            return y.reshape(t_out * self.sub * b, self.cout) + self.bias, new
        return torch.addmm(self.bias, cols, self.weight), new


class _Depthwise(nn.Module):
    """A depthwise causal convolution on [T * B, C] rows: its taps gathered, scaled, summed
    (its bias goes into the pointwise layer after it)."""

    weight: torch.Tensor

    def __init__(self, conv: nn.Conv1d, batch: int) -> None:
        super().__init__()
        self.k, self.dilation, self.cin, self.batch = conv.kernel_size[0], conv.dilation[0], conv.in_channels, batch
        self.context = (self.k - 1) * self.dilation
        self.register_buffer("weight", conv.weight.detach()[:, 0, :].t().contiguous()[:, None, :])  # [k, 1, C]

    def state_shape(self) -> tuple[int, int]:
        return (self.context * self.batch, self.cin)

    def forward(self, x: torch.Tensor, past: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.batch
        steps = x.shape[0] // b
        full = torch.cat([past, x], 0)
        idx = [(t + j * self.dilation) * b + i for j in range(self.k) for t in range(steps) for i in range(b)]
        cols = full.index_select(0, torch.tensor(idx)).reshape(self.k, steps * b, self.cin)
        return (cols * self.weight).sum(0), full[steps * b :]


def _conv_taps(conv: nn.Conv1d) -> torch.Tensor:
    """Conv1d weight [C_out, C_in / g, k] -> dense taps [k, C_in, C_out] (block-diagonal if grouped)."""
    w = conv.weight.detach()
    cout, cin_g, k = w.shape
    g = conv.groups
    cout_g = cout // g
    taps = torch.zeros(k, cin_g * g, cout)
    for i in range(g):
        taps[:, i * cin_g : (i + 1) * cin_g, i * cout_g : (i + 1) * cout_g] = w[i * cout_g : (i + 1) * cout_g].permute(2, 1, 0)
    return taps


def _transposed_taps(conv: nn.ConvTranspose1d) -> torch.Tensor:
    """ConvTranspose1d weight [C_in, C_out / g, m * s] -> taps [m, C_in, s * C_out] over inputs
    t - m + 1 .. t: output step t * s + r is the sum of the m inputs that reach it."""
    w = conv.weight.detach()
    cin, cout_g, k = w.shape
    g, s = conv.groups, conv.stride[0]
    if k % s:
        raise ValueError("the ONNX step needs transposed kernels that are a multiple of their stride")
    m, cin_g = k // s, cin // g
    dense = torch.zeros(cin, cout_g * g, k)
    for i in range(g):
        dense[i * cin_g : (i + 1) * cin_g, i * cout_g : (i + 1) * cout_g] = w[i * cin_g : (i + 1) * cin_g]
    taps = torch.stack([dense[:, :, (m - 1 - j) * s : (m - j) * s].permute(0, 2, 1) for j in range(m)])
    return taps.reshape(m, cin, s * cout_g * g)


class _Gate(nn.Module):
    """A `FlagGatedResidual` with its flag on, on [T * B, C] rows: h + (h * gamma + beta + up(LReLU(down(h) + ctx)))
    (the module's own order of operations; its adapter is pointwise, so stateless; ctx the
    temporal context's output, run as the step's own ops before it)."""

    context = 0
    gamma: torch.Tensor
    beta: torch.Tensor

    def __init__(self, gate: FlagGatedResidual, batch: int) -> None:
        super().__init__()
        self.slope = gate.slope
        self.register_buffer("gamma", gate.gamma.detach().clone())
        self.register_buffer("beta", gate.beta.detach().clone())
        self.down: _TimeConv | None = None
        self.up: _TimeConv | None = None
        if gate.down is not None and gate.up is not None:
            self.down = _TimeConv(_conv_taps(gate.down), cast(torch.Tensor, gate.down.bias), 1, 1, 1, batch)
            self.up = _TimeConv(_conv_taps(gate.up), cast(torch.Tensor, gate.up.bias), 1, 1, 1, batch)

    def forward(self, h: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        r = h * self.gamma + self.beta
        if self.down is not None and self.up is not None:
            hidden = self.down(h)[0] if ctx is None else self.down(h)[0] + ctx
            r = r + self.up(F.leaky_relu(hidden, self.slope))[0]
        return h + r


def _context_ops(gate: FlagGatedResidual, batch: int, switched_on: bool) -> list[tuple]:
    """A gate's temporal context as step ops on [T * B, C] rows: its projection in, its dilated
    causal convolutions (each a residual; their state is the step's), and with the switch on its
    projection out to the adapter. Empty for a gate without a context."""
    context = gate.context
    if context is None:
        return []

    def pointwise(c: nn.Conv1d) -> _TimeConv:
        return _TimeConv(_conv_taps(c), cast(torch.Tensor, c.bias), 1, 1, 1, batch)

    convs = [cast(CausalConv1d, m).conv for m in context.layers]
    layers = [("ctx_layer", _TimeConv(_conv_taps(c), cast(torch.Tensor, c.bias), 1, c.dilation[0], 1, batch)) for c in convs]
    out = [("ctx_out", pointwise(context.out))] if switched_on else []
    return [("ctx_in", pointwise(context.inp)), *layers, *out]


class _SoundStreamStep(nn.Module):
    """A soundstream encoder's or decoder's streaming step for export (see above): encoder
    [B, hop] -> [B, 1, D], decoder [B, 1, D] -> [B, hop]; state inputs in, new states out.
    With `denoise` on, the encoder's gates run after its stages, down step and bottleneck."""

    def __init__(self, part: SoundStreamEncoder | SoundStreamDecoder, batch_size: int, hop: int, denoise: float = 0.0) -> None:
        super().__init__()
        from codec.soundstream import SoundStreamEncoder

        self.encoder = isinstance(part, SoundStreamEncoder)
        self.batch_size, self.hop, self.slope = batch_size, hop, part.slope
        b = batch_size
        ops: list[tuple] = []

        def conv(cc) -> _TimeConv:
            c = cc.conv
            return _TimeConv(_conv_taps(c), c.bias, c.stride[0], c.dilation[0], c.groups, b)

        def transposed(ct) -> _TimeConv:
            c = ct.conv
            return _TimeConv(_transposed_taps(c), c.bias, 1, 1, c.groups, b, sub=c.stride[0])

        def units(stage) -> None:
            for unit in stage.units:
                dw, pw, gr = unit.depthwise.conv, unit.pointwise, unit.grouped
                pw_w = pw.weight.detach()[:, :, 0]
                first: _TimeConv | _Depthwise
                second: _TimeConv | None
                bias = pw.bias.detach() + pw_w @ dw.bias.detach()
                if dw.in_channels <= _FOLD_MAX_CHANNELS:
                    taps = dw.weight.detach()[:, 0, :].t()[:, :, None] * pw_w.t()[None]  # [k, C, C]
                    first, second = _TimeConv(taps, bias, 1, dw.dilation[0], 1, b), None
                else:
                    first, second = _Depthwise(dw, b), _TimeConv(pw_w.t()[None], bias, 1, 1, 1, b)
                ops.append(("unit", first, second, _TimeConv(_conv_taps(gr), gr.bias, 1, 1, gr.groups, b)))

        if isinstance(part, SoundStreamEncoder):
            conditioning = part.conditioning

            def gate(point: int) -> list[tuple]:
                if conditioning is None:
                    return []
                module = cast(FlagGatedResidual, conditioning[point])
                # The context's state advances in both graphs (one state), its output feeds the gate.
                return _context_ops(module, b, bool(denoise)) + ([("gate", _Gate(module, b))] if denoise else [])

            for i, stage in enumerate(part.stages):
                ops += [("lrelu",)] if stage.activate_first else []
                ops.append(("conv", conv(stage.step)))
                units(stage)
                ops += gate(i)
            ops += [("lrelu",), ("conv", conv(part.down)), *gate(len(part.stages))]
            ops += [("lrelu",), ("conv", conv(part.bottleneck)), *gate(len(part.stages) + 1)]
        else:
            ops.append(("conv", conv(part.entry)))
            for stage in part.stages:
                ops += [("lrelu",), ("conv", transposed(stage.step))]
                units(stage)
            ops += [("lrelu",), ("conv", transposed(part.last))]
        self.ops = ops
        self.layers = nn.ModuleList(m for op in ops for m in op[1:] if m is not None)
        self.stateful: list[_TimeConv | _Depthwise] = [m for m in self.layers if isinstance(m, (_TimeConv, _Depthwise)) and m.context]

    def initial_states(self) -> list[torch.Tensor]:
        return [torch.zeros(m.state_shape()) for m in self.stateful]

    def forward(self, x: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        given = iter(states)
        new: list[torch.Tensor] = []

        def run(m: _TimeConv | _Depthwise, h: torch.Tensor) -> torch.Tensor:
            y, state = m(h, next(given)) if m.context else m(h)
            if m.context:
                new.append(state)
            return y

        b = self.batch_size
        h = x.t().reshape(self.hop * b, 1) if self.encoder else x.reshape(b, -1)
        c: torch.Tensor | None = None  # a temporal context's activations, then its output
        for op in self.ops:
            if op[0] == "lrelu":
                h = F.leaky_relu(h, self.slope)
            elif op[0] == "conv":
                h = run(op[1], h)
            elif op[0] == "ctx_in":
                c = run(op[1], h)
            elif op[0] == "ctx_layer":
                assert c is not None
                c = c + run(op[1], F.leaky_relu(c, self.slope))
            elif op[0] == "ctx_out":
                assert c is not None
                c = run(op[1], F.leaky_relu(c, self.slope))
            elif op[0] == "gate":
                h, c = op[1](h, c), None
            else:
                _, first, second, grouped = op
                a = run(first, F.leaky_relu(h, self.slope))
                if second is not None:
                    a = run(second, a)
                h = h + run(grouped, F.leaky_relu(a, self.slope))
        h = h.reshape(b, 1, -1) if self.encoder else h.reshape(self.hop, b).t()
        return (h, *new)


def _is_soundstream(part: nn.Module) -> TypeGuard[SoundStreamEncoder | SoundStreamDecoder]:
    from codec.soundstream import SoundStreamDecoder, SoundStreamEncoder

    return isinstance(part, (SoundStreamEncoder, SoundStreamDecoder))


def _step_module(part: nn.Module, batch_size: int, denoise: float) -> _SoundStreamStep | _ExplicitState:
    """What is traced: the soundstream family's time-major step, or the part with its state explicit."""
    from codec.modules.causal_conv import CausalConvTranspose1d

    if _is_soundstream(part):
        hop = int(np.prod([m.stride for m in part.modules() if isinstance(m, (CausalConv1d, CausalConvTranspose1d))]))
        return _SoundStreamStep(part, batch_size, hop, denoise).eval()
    return _ExplicitState(_for_inference(part, denoise), batch_size, denoise).eval()


def _export(part: nn.Module, example: torch.Tensor, batch_size: int, denoise: float, path: Path) -> list[np.ndarray]:
    wrapper = _step_module(part, batch_size, denoise)
    states = wrapper.initial_states()
    names = [f"state{i}" for i in range(len(states))]
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about Python control flow on shapes
            torch.onnx.export(wrapper, (example, *states), str(tmp), dynamo=False, input_names=["x", *names], output_names=["y", *[f"new_{n}" for n in names]])
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
        quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=_int8_sensitive(path))
        tmp.replace(out)
    return out


class _OnnxPart:
    """One half of the codec as ONNX graphs, one per denoise value, sharing one state.

    Inputs and outputs are bound once to preallocated arrays (onnxruntime's I/O binding),
    the state in two sets that swap roles each step: a step allocates nothing but its output
    copy and builds no feed."""

    def __init__(self, part: nn.Module, model_id: str, part_name: str, example: torch.Tensor, batch_size: int, int8: bool) -> None:
        conditioned = any(isinstance(m, ConvNeXtBlock) and m.film is not None for m in part.modules())
        conditioned = conditioned or getattr(part, "conditioning", None) is not None  # a soundstream encoder's switch
        self.sessions = {}
        self.paths: dict[float, Path] = {}
        for denoise in DENOISE_VALUES if conditioned else DENOISE_VALUES[:1]:
            path = _cache_dir(model_id) / f"{part_name}_b{batch_size}_d{denoise:g}.onnx"
            initial = _export(part, example, batch_size, denoise, path)
            self.paths[denoise] = _quantized(path) if int8 else path
            self.sessions[denoise] = _session(self.paths[denoise])
        self.state_names = [f"state{i}" for i in range(len(initial))]
        self.batch_size = batch_size
        self.time_major = _is_soundstream(part)  # its states are [steps * B, C]
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
            elif self.time_major:  # [steps * B, C], row t * B + b
                state.reshape(-1, self.batch_size, state.shape[-1])[:, np.asarray(rows)] = 0
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


class _Samples:
    """The soundstream family's encoder takes samples as they are: [B, hop] -> [B, hop]."""

    def __call__(self, hop: np.ndarray) -> np.ndarray:
        return hop

    def reset(self, rows: list[int] | np.ndarray | None = None) -> None:
        pass


def _check_int8(model: AnyCodec, int8: bool) -> None:
    """int8 only where it costs no quality: not for the soundstream family (docs/models.md)."""
    if int8 and model.cfg.family == "soundstream":
        raise CodecError(f"{model.cfg.name}: onnx-int8 costs quality for this model; use onnx")


class OnnxStreamingEncoder:
    def __init__(self, model: AnyCodec, model_id: str, batch_size: int = 1, int8: bool = False) -> None:
        _check_int8(model, int8)
        cfg = model.cfg
        self.analysis: _Samples | _Analysis
        self.part: _OnnxPart
        if not isinstance(model, Codec):  # the soundstream family
            self.analysis = _Samples()
            self.part = _OnnxPart(model.encoder, model_id, "encoder", torch.zeros(batch_size, cfg.hop), batch_size, int8)
        else:
            bins = model.cfg.analysis_window // 2 + 1
            self.analysis = _Analysis(model.encoder, batch_size)
            self.part = _OnnxPart(_SpectrumEncoder(model.encoder), model_id, "encoder", torch.zeros(batch_size, 1, 2 * bins), batch_size, int8)
        quantizer = model.quantizer
        quantizer.eval()
        quantizer.refresh_tables()
        self.codes = quantizer.table.numpy().reshape(cfg.n_quantizers, cfg.codebook_size, -1)
        self.codes_t = np.ascontiguousarray(self.codes.transpose(0, 2, 1))  # [N_q, D, K] for r @ codes^T
        # argmin |r - c|^2 = argmax (r . c - |c|^2 / 2): one operator fewer a layer, same order
        self.half_norms = quantizer.norms.numpy() * np.float32(0.5)
        # Many small codebooks (the soundstream family's 46 of 16): a stage's scores are
        # r0 . c - |c|^2 / 2 - sum over earlier stages l of c_l[i_l] . c, so one product
        # scores every stage at once and each stage then subtracts one precomputed row of
        # cross products: 3 NumPy calls a stage instead of 5 (same order, float rounding aside;
        # tests/codec/test_onnx_runtime.py holds the codes to the torch quantizer's).
        n_q, size = self.codes.shape[:2]
        self.cross = None
        if (n_q * size) ** 2 * 4 <= _CROSS_TABLE_BYTES:
            flat = self.codes.reshape(n_q * size, -1)
            self.flat_t = np.ascontiguousarray(flat.T)
            self.flat_half_norms = self.half_norms.reshape(-1).copy()
            cross = (flat @ flat.T).reshape(n_q, size, n_q * size)
            for k in range(n_q):
                cross[k, :, : (k + 1) * size] = 0  # a stage's choice changes only later stages' scores
            self.cross = cross
        self.batch_size = batch_size
        self.hop = cfg.hop

    def encode(self, samples: np.ndarray, n_layers: int, denoise: float = 0.0) -> np.ndarray:
        """samples [B, k * hop] float32 -> codes [B, n_layers, k] int64."""
        x = np.ascontiguousarray(samples, dtype=np.float32).reshape(self.batch_size, -1, self.hop)
        latent = np.concatenate([self.part.step(self.analysis(x[:, t]), denoise) for t in range(x.shape[1])], axis=1)
        residual = latent.reshape(-1, self.codes.shape[-1])  # [B * k, D]
        out = np.empty((n_layers, residual.shape[0]), dtype=np.int64)
        if self.cross is not None:
            score = residual @ self.flat_t
            score -= self.flat_half_norms
            size = self.codes.shape[1]
            if residual.shape[0] == 1:
                row = score[0]
                for k in range(n_layers):
                    i = int(row[k * size : (k + 1) * size].argmax())
                    row -= self.cross[k, i]
                    out[k, 0] = i
            else:
                for k in range(n_layers):
                    idx = score[:, k * size : (k + 1) * size].argmax(-1)
                    score -= self.cross[k, idx]
                    out[k] = idx
            return out.reshape(n_layers, self.batch_size, -1).transpose(1, 0, 2)
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
    def __init__(self, model: AnyCodec, model_id: str, batch_size: int = 1, int8: bool = False) -> None:
        _check_int8(model, int8)
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

    def decode_latent(self, latent: np.ndarray, denoise: float = 0.0) -> np.ndarray:
        """latent [B, k, D] (not from codes: a concealer's prediction) -> samples [B, k * hop]."""
        latent = np.asarray(latent, np.float32)
        return np.concatenate([self.part.step(latent[:, t : t + 1], denoise) for t in range(latent.shape[1])], axis=1)

    def reset(self, rows: list[int] | None = None) -> None:
        self.part.reset(rows)
