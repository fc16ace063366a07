"""SIP transactions (RFC 3261 §17, RFC 6026): pure state machines and the layer."""

from sbc.sip.transaction.ack2xx import Ack2xxWait
from sbc.sip.transaction.base import ClientTransaction, Input, ServerTransaction, State
from sbc.sip.transaction.client_invite import ClientInviteTransaction, build_ack
from sbc.sip.transaction.client_non_invite import ClientNonInviteTransaction
from sbc.sip.transaction.config import TimerConfig
from sbc.sip.transaction.events import (
    AckTimeout,
    Action,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    TransactionTerminated,
    TransactionTimeout,
    Transmit,
    TransportFailure,
)
from sbc.sip.transaction.layer import TransactionLayer, client_key, server_key
from sbc.sip.transaction.server_invite import ServerInviteTransaction
from sbc.sip.transaction.server_non_invite import ServerNonInviteTransaction

__all__ = [
    "Ack2xxWait",
    "AckTimeout",
    "Action",
    "CancelReceived",
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "ClientTransaction",
    "Input",
    "RequestReceived",
    "ResponseReceived",
    "ServerInviteTransaction",
    "ServerNonInviteTransaction",
    "ServerTransaction",
    "State",
    "StrayResponse",
    "TimerConfig",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimeout",
    "Transmit",
    "TransportFailure",
    "build_ack",
    "client_key",
    "server_key",
]
