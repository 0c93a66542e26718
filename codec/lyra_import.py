"""`python -m codec import-lyra DIR`: Lyra v2's TFLite weights -> a model of the soundstream family.

Reads `soundstream_encoder.tflite`, `quantizer.tflite` and `lyragan.tflite` with the `tflite`
flatbuffer schema package (no interpreter needed) and fills `SoundStreamCodec`:

- convolutions are taken in graph order (the order they run in), which is the order of the
  module's own convolutions; every shape must match or the import stops;
- TFLite stores a 1-D convolution as CONV_2D over [1, T, 1, C] with filters [O, K, 1, I/groups],
  depthwise filters as [1, K, 1, C] and transposed ones as [O, K, 1, I]; a grouped transposed
  convolution is one TRANSPOSE_CONV per group on a SPLIT of its input;
- int8 weights (quantization-aware training: per-channel symmetric for convolutions,
  per-tensor for transposed ones) are dequantized with their scales, int32 biases with theirs;
- the quantizer's codebooks are the constant tables its `decode` signature GATHERs from, each
  placed at the stage whose slice of the indices feeds it.

The float model then runs without the graph's int8 activations; how far that lands from the
interpreter is measured in tests/codec/test_lyra_reference.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from codec.errors import CodecError

MODEL_FILES = ("soundstream_encoder.tflite", "quantizer.tflite", "lyragan.tflite")
MODEL_NAME = "soundstream16k-lyra2"
SOURCE = {
    "repository": "https://github.com/google/lyra",
    "commit": "47698dadf0010abff6a848e02642f55f806d4842",
    "tag": "1.3.2",
    "path": "lyra/model_coeffs/",
    "licence": "Apache-2.0",
    "copyright": "Copyright 2021-2022 Google LLC",
}
APACHE_LICENSE = Path("/usr/share/common-licenses/Apache-2.0")  # Debian's base-files
_TENSOR_FLOAT32, _TENSOR_INT32, _TENSOR_INT8 = 0, 2, 9
_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV")


@dataclass
class _Conv:
    kind: str
    weight: np.ndarray  # as TFLite stores it, dequantized to float32
    bias: np.ndarray
    source: int  # tensor the op reads (for TRANSPOSE_CONV: the split it reads)


class _Graph:
    """One subgraph of a flatbuffer model: operators with their names, tensors as arrays."""

    def __init__(self, path: Path, subgraph: str) -> None:
        import tflite
        from tflite.BuiltinOperator import BuiltinOperator

        names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
        self.model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
        graphs = [self.model.Subgraphs(i) for i in range(self.model.SubgraphsLength())]
        found = [g for g in graphs if g.Name().decode() == subgraph]
        if not found:
            raise CodecError(f"{path.name}: no subgraph '{subgraph}'")
        self.graph = found[0]
        self.ops = []
        for i in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(i)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            kind = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
            inputs = [op.Inputs(j) for j in range(op.InputsLength())]
            outputs = [op.Outputs(j) for j in range(op.OutputsLength())]
            self.ops.append((kind, inputs, outputs))
        self.producer = {out: n for n, (_, _, outs) in enumerate(self.ops) for out in outs}

    def constant(self, index: int) -> np.ndarray | None:
        """A tensor's stored value, dequantized to float32 (int32 index tensors stay int32)."""
        tensor = self.graph.Tensors(index)
        raw = self.model.Buffers(tensor.Buffer()).DataAsNumpy()
        if not isinstance(raw, np.ndarray) or raw.size == 0:
            return None
        shape = tuple(tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        kind = tensor.Type()
        dtype = {_TENSOR_FLOAT32: np.float32, _TENSOR_INT32: np.int32, _TENSOR_INT8: np.int8}.get(kind)
        if dtype is None:
            raise CodecError(f"tensor {tensor.Name().decode()}: unsupported type {kind}")
        value = raw.view(dtype).reshape(shape)
        quant = tensor.Quantization()
        if quant is None or quant.ScaleLength() == 0:
            return value.astype(np.float32) if kind == _TENSOR_INT8 else value
        scale = quant.ScaleAsNumpy().astype(np.float64)
        zero = quant.ZeroPointAsNumpy().astype(np.float64) if quant.ZeroPointLength() else np.zeros_like(scale)
        axis = quant.QuantizedDimension() if scale.size > 1 else 0
        bshape = [1] * value.ndim
        if value.ndim:
            bshape[axis] = scale.size
        return ((value.astype(np.float64) - zero.reshape(bshape)) * scale.reshape(bshape)).astype(np.float32)

    def convolutions(self) -> list[_Conv]:
        convs = []
        for kind, inputs, _ in self.ops:
            if kind not in _CONVS:
                continue
            # TRANSPOSE_CONV's inputs are (output shape, filter, input, bias); the others' (input, filter, bias).
            source, weight, bias = (inputs[2], inputs[1], inputs[3]) if kind == "TRANSPOSE_CONV" else (inputs[0], inputs[1], inputs[2])
            w, b = self.constant(weight), self.constant(bias)
            w = None if w is None else np.array(w)  # writable copies for torch
            if w is None or b is None:
                raise CodecError(f"a {kind} whose weights are not stored constants")
            convs.append(_Conv(kind, w, b.astype(np.float32), source))
        return convs

    def leaky_slopes(self) -> set[float]:
        from tflite.LeakyReluOptions import LeakyReluOptions

        slopes = set()
        for i, (kind, _, _) in enumerate(self.ops):
            if kind == "LEAKY_RELU":
                table = self.graph.Operators(i).BuiltinOptions()
                options = LeakyReluOptions()
                options.Init(table.Bytes, table.Pos)
                slopes.add(round(float(options.Alpha()), 6))
        return slopes


def _merge_groups(convs: list[_Conv], graph: _Graph) -> list[_Conv]:
    """One TRANSPOSE_CONV per group, each on a piece of one SPLIT -> one grouped convolution."""
    merged: list[_Conv] = []
    for conv in convs:
        split = graph.producer.get(conv.source)
        from_split = split is not None and graph.ops[split][0] == "SPLIT"
        prev = merged[-1] if merged else None
        if from_split and prev is not None and prev.kind == "TRANSPOSE_CONV" and graph.producer.get(prev.source) == split:
            prev.weight = np.concatenate([prev.weight, conv.weight], axis=0)
            prev.bias = np.concatenate([prev.bias, conv.bias])
            continue
        merged.append(_Conv(conv.kind, conv.weight, conv.bias, conv.source))
    return merged


def _as_torch_weight(conv: _Conv, module: torch.nn.Conv1d | torch.nn.ConvTranspose1d) -> torch.Tensor:
    """TFLite's filter layout -> the torch module's."""
    w = conv.weight
    if conv.kind == "DEPTHWISE_CONV_2D":  # [1, K, 1, C] -> [C, 1, K]
        out = w[0, :, 0, :].T[:, None, :]
    elif conv.kind == "CONV_2D":  # [O, K, 1, I/g] -> [O, I/g, K]
        out = w[:, :, 0, :].transpose(0, 2, 1)
    else:  # TRANSPOSE_CONV, groups stacked on O: [g * O/g, K, 1, I/g] -> torch [I, O/g, K]
        groups = module.groups
        o_per, k, _, i_per = w.shape
        o_per //= groups
        out = w.reshape(groups, o_per, k, i_per).transpose(0, 3, 1, 2).reshape(groups * i_per, o_per, k)
    return torch.from_numpy(np.ascontiguousarray(out))


def _torch_convs(part: torch.nn.Module) -> list[torch.nn.Conv1d | torch.nn.ConvTranspose1d]:
    return [m for m in part.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))]


def _fill(part: torch.nn.Module, convs: list[_Conv], what: str) -> None:
    targets = _torch_convs(part)
    if len(targets) != len(convs):
        raise CodecError(f"{what}: {len(convs)} convolutions in the file, the model has {len(targets)}")
    for n, (module, conv) in enumerate(zip(targets, convs)):
        weight = _as_torch_weight(conv, module)
        assert module.bias is not None  # every converted convolution has one
        if tuple(weight.shape) != tuple(module.weight.shape) or conv.bias.shape != tuple(module.bias.shape):
            raise CodecError(
                f"{what}: convolution {n} ({conv.kind}) is {tuple(weight.shape)} + bias {conv.bias.shape}, "
                f"the model's is {tuple(module.weight.shape)} + {tuple(module.bias.shape)}"
            )
        with torch.no_grad():
            module.weight.copy_(weight)
            module.bias.copy_(torch.from_numpy(conv.bias))


def _stage_of(graph: _Graph, tensor: int) -> int:
    """The stage a GATHER's indices come from: the first index of the STRIDED_SLICE upstream."""
    for _ in range(8):
        n = graph.producer.get(tensor)
        if n is None:
            break
        kind, inputs, _ = graph.ops[n]
        if kind == "STRIDED_SLICE":
            begin = graph.constant(inputs[1])
            if begin is not None:
                return int(begin.reshape(-1)[0])
        tensor = inputs[0]
    raise CodecError("quantizer.tflite: cannot tell which stage a codebook belongs to")


def _codebooks(path: Path) -> np.ndarray:
    graph = _Graph(path, "decode")
    books: dict[int, np.ndarray] = {}
    for kind, inputs, _ in graph.ops:
        if kind != "GATHER":
            continue
        table, indices = inputs[0], inputs[1]
        value = graph.constant(table)
        if value is None or value.ndim != 2:
            raise CodecError("quantizer.tflite: a GATHER that does not read a stored codebook")
        books[_stage_of(graph, indices)] = value
    if sorted(books) != list(range(len(books))) or not books:
        raise CodecError(f"quantizer.tflite: codebooks for stages {sorted(books)}, expected 0..{len(books) - 1}")
    return np.stack([books[k] for k in range(len(books))]).astype(np.float32)


def file_digests(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in MODEL_FILES}


def convert(folder: Path):
    """Build the float model from the three TFLite files in `folder`."""
    from codec.config import SoundStreamConfig
    from codec.soundstream import SoundStreamCodec

    try:
        import tflite  # noqa: F401  (the schema package; checked here for a one-line error)
    except ImportError:
        raise CodecError("import-lyra needs the tflite schema package: pip install -e '.[eval]'") from None
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise CodecError(f"{folder}: missing {', '.join(missing)}")
    encoder = _Graph(folder / "soundstream_encoder.tflite", "main")
    decoder = _Graph(folder / "lyragan.tflite", "main")
    slopes = encoder.leaky_slopes() | decoder.leaky_slopes()
    if len(slopes) != 1:
        raise CodecError(f"expected one LeakyReLU slope, found {sorted(slopes)}")
    books = _codebooks(folder / "quantizer.tflite")
    cfg = SoundStreamConfig(name=MODEL_NAME, leaky_slope=slopes.pop(), n_quantizers=books.shape[0], codebook_size=books.shape[1], latent_dim=books.shape[2])
    model = SoundStreamCodec(cfg)
    _fill(model.encoder, encoder.convolutions(), "soundstream_encoder.tflite")
    _fill(model.decoder, _merge_groups(decoder.convolutions(), decoder), "lyragan.tflite")
    with torch.no_grad():
        model.quantizer.codebooks.copy_(torch.from_numpy(books))
    return model.eval()


_CARD = """# {name}: a SoundStream codec with Lyra v2's weights

Model id `{model_id}` ({family} family, `codec/soundstream.py`). 16 kHz mono, 20 ms frames,
one frame of algorithmic latency; a residual VQ of {stages} stages of {bits} bits
(0.2 kbps a stage, 0.2 to {max_kbps:g} kbps).

## Provenance
The weights are Google's Lyra v2 model coefficients, {copyright}, released under the Apache
License 2.0 (the licence text is `{name}.LICENSE` beside this file):

- source: {repository}, directory `{path}`, commit `{commit}` (tag {tag})
- input files (sha256):
{inputs}

## Changes (Apache-2.0 section 4(b))
**These files were converted and modified by the ssvoip project**; they are not the original
model files. `python -m codec import-lyra` read the three TFLite flatbuffers, dequantized their
int8 convolution weights (per-channel and per-tensor scales) and int32 biases to float32,
rearranged every filter into PyTorch's layout, merged per-group transposed convolutions into
grouped ones, and saved the result as a PyTorch state dict (`{name}.pt`, sha256 recorded in
`{name}.json` and checked on every load). The model runs in float32 without the original
graph's int8 activations, so its output differs slightly from the original's
(tests/codec/test_lyra_reference.py states by how much).

This project is not Lyra and is not endorsed by Google; "Lyra" names the source of the
weights only.
"""


def write_model(models: Path, out: Path) -> str:
    """Convert and write `<name>.pt/.json`, the licence and the model card into `out`; returns the model id."""
    from codec.weights import save_model

    if not APACHE_LICENSE.is_file():
        raise CodecError(f"{APACHE_LICENSE}: the Apache-2.0 text is needed beside the weights (Debian's base-files has it)")
    model = convert(models)
    digests = file_digests(models)
    model_id = save_model(model, out, MODEL_NAME, dtype=torch.float32, extra={"source": SOURCE | {"files_sha256": digests}})
    cfg = model.cfg
    inputs = "\n".join(f"  - `{name}`: `{digest}`" for name, digest in digests.items())
    card = _CARD.format(
        name=MODEL_NAME,
        model_id=model_id,
        family=cfg.family,
        stages=cfg.n_quantizers,
        bits=cfg.bits_per_code,
        max_kbps=cfg.kbps_for_layers(cfg.n_quantizers),
        inputs=inputs,
        **SOURCE,
    )
    (out / f"{MODEL_NAME}.md").write_text(card)
    (out / f"{MODEL_NAME}.LICENSE").write_text(APACHE_LICENSE.read_text())
    return model_id
