"""Receiver statistics after RFC 3550 (A.1, A.3, A.8): extended sequence, loss, jitter.

Pure arithmetic on (sequence number, media timestamp, arrival time) triples; the clock is
whatever the caller passes in (seconds as float).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.packets import SEQ_MODULO, TS_MODULO, seq_diff

_MAX_DROPOUT = 3000  # RFC 3550 A.1: a jump further than this restarts the count
_MAX_MISORDER = 100


@dataclass
class IntervalReport:
    expected: int
    received: int

    @property
    def loss_fraction(self) -> float:
        return max(0.0, (self.expected - self.received) / self.expected) if self.expected > 0 else 0.0


class ReceiveStats:
    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.base_seq: int | None = None
        self.max_seq = 0
        self.cycles = 0
        self.received = 0
        self.out_of_order_discarded = 0  # packets too far from the sequence to count (not in `received`)
        self._jitter = 0.0  # in timestamp units, RFC 3550's J
        self._last_transit: float | None = None
        self._expected_prior = 0
        self._received_prior = 0

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return 0 if self.base_seq is None else self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (may be negative with duplicates, as in RFC 3550)."""
        return self.expected - self.received

    @property
    def jitter_ms(self) -> float:
        return 1000.0 * self._jitter / self.sample_rate

    def on_packet(self, seq: int, timestamp: int, arrival: float) -> bool:
        """Account one packet; returns False for a packet far out of order (not counted)."""
        if self.base_seq is None:
            self.base_seq = seq
            self.max_seq = seq
        else:
            delta = seq_diff(seq, self.max_seq)
            if 0 < delta < _MAX_DROPOUT:
                if seq < self.max_seq:
                    self.cycles += SEQ_MODULO
                self.max_seq = seq
            elif delta <= 0 and -delta <= _MAX_MISORDER:
                pass  # reordered or duplicate: counted as received, as RFC 3550 does
            else:
                self.out_of_order_discarded += 1
                return False
        self.received += 1
        # A.8: interarrival jitter from the transit time difference, in timestamp units.
        transit = arrival * self.sample_rate - timestamp
        if self._last_transit is not None:
            d = abs(_wrap_transit(transit - self._last_transit))
            self._jitter += (d - self._jitter) / 16.0
        self._last_transit = transit
        return True

    def interval(self) -> IntervalReport:
        """Expected and received since the previous call (A.3's fraction lost)."""
        expected, received = self.expected, self.received
        report = IntervalReport(expected - self._expected_prior, received - self._received_prior)
        self._expected_prior, self._received_prior = expected, received
        return report


def _wrap_transit(d: float) -> float:
    """Transit differences across a timestamp wrap come out near +-2^32; fold them back."""
    if d > TS_MODULO / 2:
        return d - TS_MODULO
    if d < -TS_MODULO / 2:
        return d + TS_MODULO
    return d
