"""asyncio shells for SIP over UDP, TCP and TLS (the only I/O of the signalling path)."""

from sbc.transport.backoff import BackoffPolicy
from sbc.transport.limits import TransportLimits
from sbc.transport.loop import install_best_event_loop
from sbc.transport.manager import TransportManager
from sbc.transport.tls import TlsClientConfig, TlsConfigError, TlsServerConfig
from sbc.transport.types import TCP, TLS, UDP, Inbound, Peer, Screening, TransportStats

__all__ = [
    "TCP",
    "TLS",
    "UDP",
    "BackoffPolicy",
    "Inbound",
    "Peer",
    "Screening",
    "TlsClientConfig",
    "TlsConfigError",
    "TlsServerConfig",
    "TransportLimits",
    "TransportManager",
    "TransportStats",
    "install_best_event_loop",
]
