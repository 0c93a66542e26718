"""The page server on the listener's port: a fixed set of files, 404 for the rest, websocket calls unchanged."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import onnx
import pytest

from call.listener import Listener
from call.web import ORT_FILES, WebPage
from codec.errors import CodecError
from codec.web_export import PageConcealment, WebModel, export_web_model
from codec.weights import load_model
from receiver.sinks import WavSink
from transmitter.sender import CallRefused, Transmitter
from transport.websocket import WebSocketTransport

MODEL = WebModel(manifest=b'{"model_id": "m"}', encoder=b"enc", decoder=b"dec", codebooks=b"\0" * 8)


def _root(tmp: Path) -> Path:
    (tmp / "static").mkdir()
    (tmp / "static" / "index.html").write_text("<html>page</html>")
    (tmp / "static" / "app.js").write_text("// app")
    (tmp / "secret.txt").write_text("not served")
    ort = tmp / "node_modules" / "onnxruntime-web" / "dist"
    ort.mkdir(parents=True)
    for name in ORT_FILES:
        (ort / name).write_bytes(b"ort")
    return tmp


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, b"", ""


async def test_the_listener_serves_the_page_and_still_answers_calls(tmp_path: Path) -> None:
    codec, model_id = load_model()
    listener = Listener(codec, model_id, lambda: WavSink(tmp_path / "rx.wav", 16000), token="right", web=WebPage(MODEL, _root(tmp_path)))
    server = await listener.serve("127.0.0.1", 0)
    base = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        got = {path: await asyncio.to_thread(_get, f"http://{base}{path}") for path in ("/", "/static/app.js", "/ort/ort.wasm.min.js", "/model/manifest.json")}
        assert got["/"][:2] == (200, b"<html>page</html>") and got["/"][2].startswith("text/html")
        assert got["/static/app.js"][2].startswith("text/javascript") and got["/ort/ort.wasm.min.js"][1] == b"ort"
        assert json.loads(got["/model/manifest.json"][1]) == {"model_id": "m"}
        for path in ("/secret.txt", "/static/../secret.txt", "/static/%2e%2e/secret.txt", "/node_modules/onnxruntime-web/dist/ort.wasm.min.js", "/model/x"):
            assert (await asyncio.to_thread(_get, f"http://{base}{path}"))[0] == 404, path
        # The websocket on the same port: the handshake and its token check as before.
        transport = await WebSocketTransport.connect(f"ws://{base}")
        with pytest.raises(CallRefused, match="wrong token"):
            await asyncio.wait_for(Transmitter(codec, model_id, layers=6, token="wrong").handshake(transport), timeout=10)
        await transport.close()


def test_the_page_is_handed_the_listeners_ice_servers(tmp_path: Path) -> None:
    root = _root(tmp_path)
    for servers in ([], ["stun:stun.example.org:3478", "turn:turn.example.org"]):
        body, kind = WebPage(MODEL, root, ice_servers=servers).files["/config.json"]
        assert isinstance(body, bytes) and kind == "application/json"
        assert json.loads(body) == {"ice_servers": servers}


def test_a_missing_onnxruntime_web_is_a_one_line_error(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "node_modules" / "onnxruntime-web" / "dist" / ORT_FILES[0]).unlink()
    with pytest.raises(CodecError, match="npm ci --prefix"):
        WebPage(MODEL, root)


def test_the_web_export_carries_the_graphs_codebooks_and_their_shapes() -> None:
    codec, model_id = load_model()
    exported = export_web_model(codec, model_id, layers=30)
    manifest = json.loads(exported.manifest)
    cfg = codec.cfg
    assert manifest["model_id"] == model_id and manifest["layers"] == 30 and manifest["hop"] == cfg.hop
    assert len(exported.codebooks) == 4 * cfg.n_quantizers * cfg.codebook_size * cfg.latent_dim
    for graph, states in ((exported.encoder, manifest["encoder_states"]), (exported.decoder, manifest["decoder_states"])):
        inputs = onnx.load_model_from_string(graph).graph.input  # what the page feeds: x, then each state
        assert [i.name for i in inputs] == ["x", *[f"state{k}" for k in range(len(states))]]
        assert [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in inputs[1:]] == states


def test_the_web_export_carries_the_listeners_latent_predictor_when_it_conceals_with_one() -> None:
    from codec.concealment import StreamingPredictor, load_predictor

    codec, model_id = load_model()
    assert "predictor.bin" not in export_web_model(codec, model_id, layers=30).files()  # repeat: none served
    predictor = StreamingPredictor(load_predictor())
    exported = export_web_model(codec, model_id, layers=30, concealment=PageConcealment(predictor, fade=0.9, hold=0))
    manifest = json.loads(exported.manifest)
    refiner, reach = predictor.b_inner.size, predictor.reach  # the shipped predictor has a refiner
    assert manifest["predictor"] == {"hidden": predictor.hidden, "refiner": refiner, "reach": reach, "fade": 0.9, "hold": 0}
    dim, hidden = codec.cfg.latent_dim, predictor.hidden
    floats = 2 * dim + 3 * hidden * dim + 3 * hidden + 3 * hidden + 3 * hidden * hidden + 3 * hidden + dim * hidden + dim
    floats += refiner * (hidden + 2 * dim + reach + 1) + refiner + dim * refiner + dim
    body, kind = exported.files()["predictor.bin"]
    assert len(body) == 4 * floats and kind == "application/octet-stream"
    assert np.frombuffer(body, "<f4")[:dim].tolist() == pytest.approx(predictor.mean.tolist())  # the order the page reads
