"""What the transaction layer hands back: wire output and events for the core.

Every call into :class:`~sbc.sip.transaction.layer.TransactionLayer` returns a
list of these actions, in the order they must be carried out. ``Transmit`` is
for the transport; everything else is for the core (the transaction user,
RFC 3261 §17: "TU"). Absorbed retransmissions produce nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sbc.sip.message import Request, Response
    from sbc.sip.target import Target
    from sbc.sip.transaction.base import ClientTransaction, ServerTransaction


@dataclass(frozen=True, slots=True)
class Transmit:
    """Bytes to put on the wire."""

    data: bytes
    target: Target


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request for the core; ``transaction`` is None for ACK (§17.2.3)."""

    request: Request
    source: Target
    transaction: ServerTransaction | None


@dataclass(frozen=True, slots=True)
class CancelReceived:
    """A CANCEL matched an INVITE server transaction still in Proceeding (§9.2).

    The layer has already answered the CANCEL with 200; the core must answer
    the INVITE (``invite``) with 487.
    """

    request: Request
    source: Target
    invite: ServerTransaction


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A provisional or final response for the core (retransmissions absorbed)."""

    response: Response
    transaction: ClientTransaction


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A response matching no transaction, or a 2xx retransmission (RFC 6026 §8.4).

    The core re-ACKs 2xx retransmissions from the dialog (§13.2.2.4).
    """

    response: Response
    source: Target


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    """Timer B or F fired (or §9.1's 64*T1 after CANCEL): the core acts as on 408."""

    transaction: ClientTransaction


@dataclass(frozen=True, slots=True)
class TransportFailure:
    """The transport failed for a client transaction: the core acts as on 503 (§8.1.3.1)."""

    transaction: ClientTransaction


@dataclass(frozen=True, slots=True)
class AckTimeout:
    """A 2xx to INVITE was not ACKed within 64*T1 (§13.3.1.4): the core should BYE."""

    call_id: str
    cseq: int
    context: object


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    """A transaction reached Terminated and left the layer (bookkeeping only)."""

    transaction: ClientTransaction | ServerTransaction


Action = (
    Transmit
    | RequestReceived
    | CancelReceived
    | ResponseReceived
    | StrayResponse
    | TransactionTimeout
    | TransportFailure
    | AckTimeout
    | TransactionTerminated
)
