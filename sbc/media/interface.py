"""The narrow interface between the B2BUA and media handling.

The b2bua hands every SDP body that crosses from one leg to the other to a
:class:`MediaHandler`; the handler returns the body the other leg sees.
Implementations: :class:`PassthroughMedia` (no anchoring: SDP is relayed
unchanged) today, an RTP relay (in-process or in worker processes) later.
Calls are synchronous on purpose: port allocation is local bookkeeping, and
a process-based relay is told about changes asynchronously.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sbc.sip.errors import SipError


class MediaError(SipError):
    """SDP that cannot be handled (answered 488, RFC 3261 §21.4.26)."""

    status = 488


@dataclass(frozen=True, slots=True)
class MediaStats:
    packets: int = 0
    octets: int = 0
    lost: int = 0
    extra: dict[str, float] = field(default_factory=dict)


class MediaHandler(Protocol):
    def offer(self, session: str, from_leg: str, to_leg: str, sdp: bytes) -> bytes:
        """An offer leaves ``from_leg`` for ``to_leg``: return what ``to_leg`` sees."""
        ...

    def answer(self, session: str, from_leg: str, to_leg: str, sdp: bytes) -> bytes:
        """An answer leaves ``from_leg`` for ``to_leg``: return what ``to_leg`` sees."""
        ...

    def delete(self, session: str) -> None:
        """The call is over: release everything held for ``session``."""
        ...

    def stats(self, session: str) -> MediaStats: ...


class PassthroughMedia:
    """No media anchoring: SDP crosses unchanged (the foundation's behaviour)."""

    def __init__(self) -> None:
        self.sessions: set[str] = set()

    def offer(self, session: str, from_leg: str, to_leg: str, sdp: bytes) -> bytes:
        self.sessions.add(session)
        return sdp

    def answer(self, session: str, from_leg: str, to_leg: str, sdp: bytes) -> bytes:
        self.sessions.add(session)
        return sdp

    def delete(self, session: str) -> None:
        self.sessions.discard(session)

    def stats(self, session: str) -> MediaStats:
        return MediaStats()
