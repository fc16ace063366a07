"""Errors of the SIP layer.

Every error carries the status a UAS answers with (h11's ``error_status_hint``
idea): the layer's entry point turns it into a response, never lets it escape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sbc.sip.message import Request, Response


class SipError(Exception):
    """A SIP-level failure that maps to a final response status."""

    status: int = 500

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status


class ParseError(SipError):
    """The bytes are not a well-formed SIP message (answered 400, RFC 3261 §21.4.1).

    ``message`` holds what could be parsed when the framing was sound, so a
    request can still be answered with a 400 naming the problem.
    """

    status = 400
    message: Request | Response | None = None


class UnsupportedVersionError(ParseError):
    """SIP version other than 2.0 (RFC 3261 §21.5.6)."""

    status = 505
