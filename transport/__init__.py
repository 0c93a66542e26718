"""I/O adapters that carry media packets and control messages between the two ends."""

from transport.base import Transport, TransportClosed

__all__ = ["Transport", "TransportClosed"]
