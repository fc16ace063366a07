"""Packets whose handling raised: dropped, counted, and logged once in a while.

Every parser on the relay's path refuses bad input with its own counted
reason (``stun_malformed``, ``rtp_malformed``, ``rtcp_malformed``,
``srtp_failed``); an exception that still escapes one packet's handling is
a bug or an input nobody foresaw. The relay's socket readers catch it
(:meth:`sbc.media.relay.side.Side.fault`): that packet is dropped and
counted in ``packet_errors``, and the reader goes on with the next one. Anyone can
send such packets at line rate, so the log gets at most one line (with its
traceback) per :data:`LOG_INTERVAL`, saying how many it left out.

Pure: the caller passes ``now``.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

LOG_INTERVAL = 60.0  # seconds between two log lines about failing packets


class FaultLog:
    """Rate-limited logging of the exceptions packets raise (one relay process)."""

    __slots__ = ("interval", "next_at", "unlogged")

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        self.interval = interval
        self.next_at = float("-inf")
        self.unlogged = 0  # failures since the last line

    def record(self, error: Exception, now: float) -> None:
        if now < self.next_at:
            self.unlogged += 1
            return
        log.error(
            "relay: a packet's handling raised %s; packet dropped"
            " (%d more since the last such line, counted in packet_errors)",
            type(error).__name__,
            self.unlogged,
            exc_info=error,
        )
        self.unlogged = 0
        self.next_at = now + self.interval
