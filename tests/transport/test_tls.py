"""wss: a caller connects only to the certificate it trusts (a CA, or a pinned fingerprint)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.server import serve

from transport.base import TransportClosed
from transport.tls import client_context, fingerprint, server_context
from transport.websocket import WebSocketTransport


def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


async def _echo(connection) -> None:
    async for message in connection:
        await connection.send(message)


async def test_pinned_and_ca_trusted_certificates_connect_others_do_not(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, "listener")
    other, _ = _self_signed(tmp_path, "other")
    context, print_ = server_context(cert, key)
    async with serve(_echo, "127.0.0.1", 0, ssl=context) as server:
        url = f"wss://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        ws = await WebSocketTransport.connect(url, ssl_context=client_context(pin=print_), pin=print_)
        await ws.send_control("hi")
        assert await ws.recv() == "hi"
        await ws.close()
        ws = await WebSocketTransport.connect(url, ssl_context=client_context(ca=cert))  # a private CA
        await ws.close()
        wrong = fingerprint(b"not this one")
        with pytest.raises(TransportClosed, match="does not match the pinned"):
            await WebSocketTransport.connect(url, ssl_context=client_context(pin=wrong), pin=wrong)
        with pytest.raises(TransportClosed, match="certificate"):  # signed by no CA we trust
            await WebSocketTransport.connect(url, ssl_context=client_context(ca=other))
        with pytest.raises(TransportClosed):  # the system's CAs do not know a self-signed one
            await WebSocketTransport.connect(url, ssl_context=client_context())


def test_bad_pins_and_files_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="64 hex"):
        client_context(pin="abc")
    with pytest.raises(ValueError, match="CA file"):
        client_context(ca=tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="cannot load"):
        server_context(tmp_path / "missing.pem", tmp_path / "missing.key")
