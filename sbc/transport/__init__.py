"""asyncio shells for SIP over UDP and TCP (the only I/O of the signalling path)."""

from sbc.transport.loop import install_best_event_loop
from sbc.transport.manager import TransportManager
from sbc.transport.types import TCP, UDP, Inbound, Peer, TransportStats

__all__ = [
    "TCP",
    "UDP",
    "Inbound",
    "Peer",
    "TransportManager",
    "TransportStats",
    "install_best_event_loop",
]
