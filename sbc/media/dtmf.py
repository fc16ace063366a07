"""RFC 4733 telephone events: the payload, detection with dedupe, generation.

Pure: no sockets, no clock of its own (callers pass ``now``).

Payload (RFC 4733 §2.3)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     event     |E|R| volume    |          duration             |

Events 0-15 are the DTMF digits ``0-9 * # A-D`` (RFC 4733 §3.2). One event
is one RTP timestamp: every packet of it (the first, with the marker bit,
the updates with a growing duration, the end packets with E set, sent three
times) carries the timestamp of its start (§2.5.1).

**Detection** (:class:`EventDetector`, one per receiving stream) reports each
event once, at its first end packet with the final duration; the other end
packets and any retransmission carry a timestamp already reported and are
ignored. An event whose end packets were all lost is still reported: when the
next event starts, or when :meth:`EventDetector.expire` finds it silent. An
event longer than the 16-bit duration field is sent in segments (§2.5.1.3),
each a new timestamp at the previous one plus its duration: such a segment
extends the event instead of starting a new one.

Durations are in units of the event's clock: 8000 Hz for the usual
``telephone-event/8000``, or the rate the leg negotiated (``/48000`` beside
Opus, RFC 4733 §2.3.1), where the 16-bit field caps a digit we send at 1.36 s.

**Generation** (:class:`EventSender`, one per leg we inject towards): the
packet schedule of §2.5.1 — a start packet with the marker bit, an update every
50 ms with the duration so far, and the end packet three times (at the same
interval), all with the event's start timestamp. Our packets are a source of
their own (a random SSRC, RFC 3550 §8.1): the relayed audio keeps its SSRC,
sequence numbers and timestamps untouched, which splicing into it would break.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

#: RFC 4733 §3.2: event codes 0-15.
DIGITS = "0123456789*#ABCD"
END_BIT = 0x80
VOLUME_MASK = 0x3F
MAX_DURATION = 0xFFFF  # the 16-bit duration field, in timestamp units
CLOCK_RATE = 8000  # telephone-event/8000, the rate every endpoint offers
DEFAULT_VOLUME = 10  # -10 dBm0 (RFC 4733 §2.3.4: 0 to -63 dBm0, sent as a positive value)
UPDATE_INTERVAL = 0.05  # seconds between packets of one event (RFC 4733 §2.5.1.2)
END_REPEATS = 3  # RFC 4733 §2.5.1.4
#: An event silent this long (seconds) is over even without an end packet.
SILENCE_TIMEOUT = 0.5
#: Default and bounds of a digit's duration when a signalling message gives none.
DEFAULT_DURATION_MS = 160
MIN_DURATION_MS = 40
MAX_DURATION_MS = 5000

_PAYLOAD = struct.Struct("!BBH")
_RTP = struct.Struct("!BBHII")
_TIMESTAMP_MASK = 0xFFFFFFFF


def digit_of(event: int) -> str | None:
    """The DTMF digit of an event code, None for other events (tones, flash)."""
    return DIGITS[event] if 0 <= event < len(DIGITS) else None


def event_of(digit: str) -> int:
    """The event code of a DTMF digit (``a``-``d`` too); :class:`ValueError` otherwise."""
    index = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return index


def clamp_duration_ms(duration_ms: int) -> int:
    """A digit's duration within what we send (a far end asking for 0 or 1 hour)."""
    return max(MIN_DURATION_MS, min(MAX_DURATION_MS, duration_ms))


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 §2.3 payload."""

    event: int
    end: bool
    volume: int
    duration: int  # timestamp units since the event's start

    def pack(self) -> bytes:
        flags = (END_BIT if self.end else 0) | (self.volume & VOLUME_MASK)
        return _PAYLOAD.pack(self.event, flags, min(self.duration, MAX_DURATION))

    @classmethod
    def parse(cls, payload: bytes | bytearray | memoryview) -> TelephoneEvent:
        """The first event of a payload; :class:`ValueError` when shorter than 4 octets."""
        if len(payload) < _PAYLOAD.size:
            raise ValueError("telephone-event payload shorter than 4 octets")
        event, flags, duration = _PAYLOAD.unpack_from(payload)
        return cls(event, bool(flags & END_BIT), flags & VOLUME_MASK, duration)


@dataclass(frozen=True, slots=True)
class Digit:
    """A detected DTMF digit and how long it lasted."""

    digit: str
    duration_ms: int


@dataclass(slots=True)
class _Current:
    timestamp: int  # of the segment being received
    event: int
    duration: int  # of the whole event, earlier segments included
    segment_base: int  # the duration of the earlier segments
    last_seen: float


class EventDetector:
    """One report per telephone event of one stream, whatever the repeats."""

    __slots__ = ("_clock_rate", "_current", "_done")

    def __init__(self, clock_rate: int = CLOCK_RATE) -> None:
        self._clock_rate = clock_rate
        self._current: _Current | None = None
        self._done: list[int] = []  # timestamps reported lately (the end packets repeat)

    def feed(
        self, timestamp: int, payload: bytes | bytearray | memoryview, now: float
    ) -> Digit | None:
        """One telephone-event packet; the digit when this packet completes one.

        A malformed payload (shorter than 4 octets) is ignored, as is an event
        that is not a digit (it is still not forwarded: it is not audio).
        """
        try:
            event = TelephoneEvent.parse(payload)
        except ValueError:
            return None
        if timestamp in self._done:
            return None  # a repeated end packet, or a late retransmission
        current = self._current
        finished = None
        if current is not None and current.timestamp != timestamp:
            if self._continues(current, timestamp, event.event):
                current.segment_base = current.duration
                current.timestamp = timestamp
            else:
                finished = self._finish()  # its end packets never came
                current = None
        if current is None:
            current = self._current = _Current(timestamp, event.event, 0, 0, now)
        current.duration = max(current.duration, current.segment_base + event.duration)
        current.last_seen = now
        if event.end:
            return self._finish()
        return finished

    def expire(self, now: float) -> Digit | None:
        """The event in progress when it has been silent for :data:`SILENCE_TIMEOUT`."""
        current = self._current
        if current is not None and now - current.last_seen >= SILENCE_TIMEOUT:
            return self._finish()
        return None

    def _continues(self, current: _Current, timestamp: int, event: int) -> bool:
        """A next segment of a long event (RFC 4733 §2.5.1.3)."""
        segment = current.duration - current.segment_base
        return (
            event == current.event
            and segment >= MAX_DURATION - self._clock_rate // 10  # the last one was full
            and timestamp == (current.timestamp + segment) & _TIMESTAMP_MASK
        )

    def _finish(self) -> Digit | None:
        current = self._current
        if current is None:
            return None
        self._current = None
        self._done.append(current.timestamp)
        del self._done[:-4]
        digit = digit_of(current.event)
        if digit is None:
            return None
        return Digit(digit, current.duration * 1000 // self._clock_rate)


@dataclass(frozen=True, slots=True)
class Scheduled:
    """One packet of an event and when to send it (seconds from now)."""

    delay: float
    packet: bytes


class EventSender:
    """RTP packets of injected digits towards one leg, as our own source.

    The SSRC and first sequence number and timestamp are random (RFC 3550
    §5.1); they are kept for the whole call, so a receiver sees one steady
    source of events. Digits that overlap are queued one after the other.
    """

    __slots__ = ("_busy_until", "_origin", "_origin_timestamp", "_sequence", "clock_rate", "ssrc")

    def __init__(self, clock_rate: int = CLOCK_RATE, *, ssrc: int | None = None) -> None:
        self.clock_rate = clock_rate
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        self._sequence = secrets.randbits(16)
        self._origin_timestamp = secrets.randbits(32)
        self._origin: float | None = None  # the clock reading of _origin_timestamp
        self._busy_until = 0.0

    def packets(
        self,
        payload_type: int,
        digit: str,
        duration_ms: int,
        now: float,
        *,
        volume: int = DEFAULT_VOLUME,
    ) -> list[Scheduled]:
        """Every packet of one digit (RFC 4733 §2.5.1), with its send delay."""
        event = event_of(digit)
        if self._origin is None:
            self._origin = now
        start = max(now, self._busy_until)
        total = min(clamp_duration_ms(duration_ms) * self.clock_rate // 1000, MAX_DURATION)
        elapsed_units = round((start - self._origin) * self.clock_rate)
        timestamp = (self._origin_timestamp + elapsed_units) & _TIMESTAMP_MASK
        step = round(UPDATE_INTERVAL * self.clock_rate)
        out = []
        offset = 0
        while offset < total:  # the start packet, then updates
            duration = min(offset + step, total)
            body = TelephoneEvent(event, False, volume, duration).pack()
            delay = start - now + offset / self.clock_rate
            out.append(Scheduled(delay, self._rtp(payload_type, offset == 0, timestamp, body)))
            offset += step
        end = TelephoneEvent(event, True, volume, total).pack()
        for repeat in range(END_REPEATS):
            delay = start - now + total / self.clock_rate + repeat * UPDATE_INTERVAL
            out.append(Scheduled(delay, self._rtp(payload_type, False, timestamp, end)))
        # the next digit starts after this one's end packets and a gap as long
        self._busy_until = start + total / self.clock_rate + END_REPEATS * UPDATE_INTERVAL
        return out

    def _rtp(self, payload_type: int, marker: bool, timestamp: int, body: bytes) -> bytes:
        second = (0x80 if marker else 0) | (payload_type & 0x7F)
        header = _RTP.pack(0x80, second, self._sequence, timestamp, self.ssrc)
        self._sequence = (self._sequence + 1) & 0xFFFF
        return header + body
