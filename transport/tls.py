"""TLS for the signaling websocket (wss): the listener's certificate, the caller's trust in it.

The websocket carries the hello (with the token) and the WebRTC offer and answer, whose
`a=fingerprint` lines are what DTLS on the data channel checks the other side against. Over
plain ws:// anyone on the path can read the token and swap the fingerprints (a man in the
middle of the media, invisible to both sides); over wss:// with a certificate the caller
checks, neither can happen. The caller trusts the certificate by a CA (the system's, or
`--ca FILE` for a private one), or by its SHA-256 fingerprint (`--pin`, for a self-signed
certificate: the listener prints it at start), checked before the hello is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
from pathlib import Path

from transport.base import TransportClosed


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, as AA:BB:... (what `openssl x509 -fingerprint -sha256` prints)."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def _normalise(pin: str) -> str:
    hexdigits = pin.replace(":", "").strip().upper()
    if hexdigits.startswith("SHA256="):
        hexdigits = hexdigits[len("SHA256=") :]
    if len(hexdigits) != 64 or any(c not in "0123456789ABCDEF" for c in hexdigits):
        raise ValueError(f"a certificate pin is 64 hex digits (SHA-256), not {pin!r}")
    return hexdigits


def server_context(cert: Path, key: Path) -> tuple[ssl.SSLContext, str]:
    """The listener's context and its certificate's fingerprint (to print). Raises ValueError."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the certificate {cert} with the key {key}: {getattr(exc, 'strerror', None) or exc}") from None
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())  # the first certificate of the chain
    return context, fingerprint(der)


def client_context(ca: Path | None = None, pin: str | None = None) -> ssl.SSLContext:
    """Trust a CA (the system's by default, or `ca`), or, with `pin`, exactly one certificate
    (checked by `check_pin` once connected: the chain and name are not, a pin is stronger)."""
    if pin is not None:
        _normalise(pin)  # fail now on a malformed pin
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        try:
            context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load the CA file {ca}: {getattr(exc, 'strerror', None) or exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def check_pin(ssl_object: ssl.SSLObject | ssl.SSLSocket | None, pin: str) -> None:
    """Raises TransportClosed unless the peer's certificate has the pinned fingerprint."""
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        raise TransportClosed("the listener presented no certificate to check the pin against")
    got = fingerprint(der).replace(":", "")
    if not hmac.compare_digest(got, _normalise(pin)):
        raise TransportClosed(f"the listener's certificate {fingerprint(der)} does not match the pinned fingerprint")
