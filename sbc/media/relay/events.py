"""DTMF in the relay: telephone events taken out of a stream, and injected into one.

The engine keeps this off its plain hot path: only a side whose spec says
``dtmf_report`` gets a :class:`DtmfTap`, and a side with a tap is drained by
the slower per-packet path (as SRTP is). The tap looks at the payload type of
each accepted packet; a telephone-event packet (the side's ``dtmf_pt``) is
consumed — never relayed, as the other leg takes DTMF as SIP INFO — and fed
to an :class:`~sbc.media.dtmf.EventDetector`, which reports each digit once.

Injection (:class:`DtmfInjector`) asks an :class:`~sbc.media.dtmf.EventSender` for
the packets of one digit and sends each at its time (the engine's
``loop.call_later``: this module stays free of asyncio);
the send callback looks up the destination when the packet leaves, so a latch
that moves meanwhile is followed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from sbc.media.control import DtmfCallback, SideSpec
from sbc.media.dtmf import EventDetector, EventSender
from sbc.media.relay.rtp import PT_MASK, rtp_payload

log = logging.getLogger(__name__)


class DtmfTap:
    """Telephone events from one side (``leg`` of ``session``): consumed and
    reported through ``on_dtmf``, digit by digit."""

    __slots__ = ("clock", "detector", "leg", "on_dtmf", "pt", "session")

    def __init__(
        self, event: tuple[int, int], where: tuple[str, str], on_dtmf: DtmfCallback | None
    ) -> None:
        self.pt, self.clock = event  # payload number, clock rate
        self.session, self.leg = where
        self.on_dtmf = on_dtmf
        self.detector = EventDetector(self.clock)

    @classmethod
    def renew(
        cls,
        tap: DtmfTap | None,
        spec: SideSpec,
        where: tuple[str, str],
        on_dtmf: DtmfCallback | None,
    ) -> DtmfTap | None:
        """The tap a side needs for its new ``spec`` (``where`` = session, leg):
        the current one while its payload number and clock are unchanged."""
        if spec.dtmf_pt is None or not spec.dtmf_report:
            return None
        if tap is not None and (tap.pt, tap.clock) == (spec.dtmf_pt, spec.dtmf_clock):
            return tap
        return cls((spec.dtmf_pt, spec.dtmf_clock), where, on_dtmf)

    def report(self, digit: str, duration_ms: int) -> None:
        if self.on_dtmf is None:
            return
        try:
            self.on_dtmf(self.session, self.leg, digit, duration_ms)
        except Exception:  # signalling's problem: the relay goes on
            log.exception("on_dtmf failed for session %s", self.session)

    def take(self, packet: bytes, now: float) -> bool:
        """True when ``packet`` (plain RTP) is a telephone event: not to be relayed.

        :class:`ValueError` when it is one whose lengths do not add up: not
        audio either, so the caller drops it (and counts it)."""
        if packet[1] & PT_MASK != self.pt:
            return False
        payload = rtp_payload(packet)
        timestamp = int.from_bytes(packet[4:8], "big")
        digit = self.detector.feed(timestamp, payload, now)
        if digit is not None:
            self.report(digit.digit, digit.duration_ms)
        return True

    def expire(self, now: float) -> None:
        """Report an event whose end packets never came (called by the sweep)."""
        digit = self.detector.expire(now)
        if digit is not None:
            self.report(digit.digit, digit.duration_ms)


class DtmfInjector:
    """Digits injected towards legs: one :class:`~sbc.media.dtmf.EventSender`
    (our own SSRC) per session and leg, kept for the call; ``send(session,
    index, leg, packet)`` puts one packet on the wire when its time comes."""

    def __init__(
        self,
        clock: Callable[[], float],
        call_later: Callable[[float, Callable[[], None]], object],
        send: Callable[[str, int, str, bytes], None],
    ) -> None:
        self._clock = clock
        self._call_later = call_later
        self._send = send
        self._senders: dict[tuple[str, str], EventSender] = {}

    def send(
        self, where: tuple[str, int, str], event: tuple[int, int], digit: tuple[str, int]
    ) -> None:
        """Schedule every packet of ``digit`` = (digit, duration_ms) towards
        ``where`` = (session, stream index, leg), as ``event`` = (payload
        number, clock rate) (RFC 4733 §2.5.1)."""
        session, index, leg = where
        sender = self._senders.get((session, leg))
        if sender is None or sender.clock_rate != event[1]:
            sender = self._senders[session, leg] = EventSender(event[1])
        try:
            packets = sender.packets(event[0], digit[0], digit[1], self._clock())
        except ValueError:
            log.info("dtmf for session %s: %r is not a DTMF digit", session, digit[0])
            return
        for item in packets:
            if item.delay <= 0:
                self._send(session, index, leg, item.packet)
            else:
                self._call_later(item.delay, partial(self._send, session, index, leg, item.packet))

    def forget(self, session: str) -> None:
        for leg in ("a", "b"):
            self._senders.pop((session, leg), None)
