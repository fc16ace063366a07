"""What a call leaves with each request it sends, and what it needs from the core."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto
from typing import TYPE_CHECKING, Protocol

from sbc.auth.client import ClientAuth
from sbc.b2bua.config import CallConfig
from sbc.b2bua.leg import Leg
from sbc.media.interface import MediaHandler
from sbc.policy import Trunk
from sbc.sip.message import Request, Response
from sbc.sip.transaction import ClientTransaction, ServerTransaction

if TYPE_CHECKING:
    from sbc.b2bua.call import Call


class Kind(Enum):
    """Why we sent a request on a leg: decides what its response does."""

    INVITE = auto()  # the initial B-leg INVITE
    CANCEL = auto()
    BYE = auto()
    PRACK = auto()  # our own PRACK of the B-leg's reliable provisional
    REFRESH = auto()  # our own session refresh (UPDATE)
    RELAY = auto()  # a request relayed from the other leg
    DTMF = auto()  # our own INFO carrying a digit (sbc.b2bua.dtmf)


@dataclass(slots=True)
class Pending:
    """Context of a client transaction the call started (``tx.context``)."""

    call: Call
    leg: Leg
    kind: Kind
    origin: ServerTransaction | None = None  # the request on the other leg to answer
    request: Request | None = None


class Signalling(Protocol):
    """What a call needs from the core; implemented by :class:`sbc.b2bua.core.Core`."""

    config: CallConfig
    media: MediaHandler
    stats: dict[str, int]  # the core's counters (sbc.admin core_stats)

    def send_request(self, leg: Leg, request: Request, pending: Pending) -> ClientTransaction: ...

    def send_response(self, tx: ServerTransaction, response: Response) -> None: ...

    def send_ack(self, leg: Leg, ack: Request) -> None: ...

    def call_ended(self, call: Call) -> None: ...

    def failover(self, call: Call) -> bool: ...

    def client_auth(self, trunk: Trunk | None) -> ClientAuth | None:
        """The digest client for ``trunk`` (None: no credentials configured)."""
        ...

    def call_event(self, event: str, call: Call) -> None:
        """A call was started, is ringing, was answered or ended (CDRs, metrics)."""
        ...
