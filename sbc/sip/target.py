"""Where a message goes (or came from): interface, transport and address.

The transport layer maps this to a socket; the pure layers only carry it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Target:
    interface: str  # name of the SBC interface (listener) used
    transport: str  # "udp" | "tcp" | "tls" (lower case)
    host: str
    port: int
    connection: int | None = None  # stream connection id, when known

    @property
    def reliable(self) -> bool:
        """RFC 3261 §17: timers A/E/G/I/J/K collapse on reliable transports."""
        return self.transport != "udp"

    def __str__(self) -> str:
        return f"{self.transport}:{self.host}:{self.port}@{self.interface}"
