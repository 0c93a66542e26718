"""The browser page `ssvoip listen --web` serves on the signaling port: static files only.

A plain HTTP GET on the listener's port (no websocket upgrade) is answered here, through the
`websockets` server's `process_request`; an upgrade goes on to the call's handshake, which is
where the token is checked (the page asks the user for it, or reads it from the URL's
fragment, which the browser never sends in a request). What is served is a fixed set:

- `/` and `/static/NAME`: the page (web/static/, flat: no path walks into other folders);
- `/ort/NAME`: the onnxruntime-web files the page loads (web/node_modules, installed by
  setup.sh's `npm ci --prefix web`; nothing is fetched from the internet);
- `/model/NAME`: the codec's streaming graphs, codebooks and manifest (`codec.web_export`);
- `/config.json`: the listener's STUN/TURN URLs (`--ice-server`), which the page's WebRTC
  offer uses unless the URL's fragment names its own (`#ice=URL,URL`). URLs only: no
  credentials are handed out to whoever loads the page.

Anything else is a 404. With a certificate (`--cert`) the same port serves HTTPS and WSS:
browsers give a page the microphone only on a secure origin or on localhost.
"""

from __future__ import annotations

import http
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from codec.errors import CodecError
from codec.web_export import WebModel

log = logging.getLogger(__name__)
WEB_ROOT = Path(__file__).resolve().parents[1] / "web"
# The onnxruntime-web build the page loads: its single-threaded wasm back end (no
# SharedArrayBuffer, so no cross-origin isolation headers needed) and the module that loads it.
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",
    ".json": "application/json",
}
# Scripts from this origin only ('wasm-unsafe-eval': compiling the codec's wasm), connections to
# this origin's websocket; nothing from elsewhere.
_CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self' ws: wss:; style-src 'self'; img-src 'self' data:"


class WebPage:
    def __init__(self, model: WebModel, root: Path = WEB_ROOT, ice_servers: Sequence[str] = ()) -> None:
        """Raises CodecError when the page or onnxruntime-web is missing (setup.sh installs it).
        `ice_servers`: the listener's STUN/TURN URLs, which the page offers with."""
        static = root / "static"
        ort = root / "node_modules" / "onnxruntime-web" / "dist"
        missing = [str(ort / name) for name in ORT_FILES if not (ort / name).is_file()]
        if not (static / "index.html").is_file():
            raise CodecError(f"--web: the page is missing ({static / 'index.html'})")
        if missing:
            raise CodecError(f"--web: onnxruntime-web is not installed ({missing[0]}): run `npm ci --prefix {root}` (setup.sh does)")
        self.files: dict[str, tuple[Path | bytes, str]] = {}
        for path in sorted(static.iterdir()):
            if path.is_file() and path.suffix in _TYPES:
                self.files[f"/static/{path.name}"] = (path, _TYPES[path.suffix])
        self.files["/"] = self.files["/static/index.html"]
        for name in ORT_FILES:
            self.files[f"/ort/{name}"] = (ort / name, _TYPES[Path(name).suffix])
        for name, (body, kind) in model.files().items():
            self.files[f"/model/{name}"] = (body, kind)
        self.files["/config.json"] = (json.dumps({"ice_servers": list(ice_servers)}).encode(), _TYPES[".json"])

    def respond(self, connection: ServerConnection, request: Request) -> Response | None:
        """`process_request` for the listener's server: None lets a websocket upgrade through."""
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        found = self.files.get(request.path.split("?", 1)[0])
        if found is None:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        source, kind = found
        try:
            body = source.read_bytes() if isinstance(source, Path) else source
        except OSError as exc:
            log.warning("cannot serve %s: %s", request.path, exc.strerror)
            return connection.respond(http.HTTPStatus.NOT_FOUND, "not found\n")
        headers = Headers(
            [
                ("Content-Type", kind),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-cache"),
                ("X-Content-Type-Options", "nosniff"),
                ("Content-Security-Policy", _CSP),
                ("Connection", "close"),
            ]
        )
        return Response(http.HTTPStatus.OK.value, "OK", headers, body)
