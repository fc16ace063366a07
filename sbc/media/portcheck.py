"""Is a media port pair free on this host? (Used by the port pool before it
hands a pair out: ports of our range held by another process are skipped.)"""

from __future__ import annotations

import socket


def pair_free(ip: str, port: int) -> bool:
    """True when ``port`` and ``port + 1`` can be bound for UDP on ``ip`` now."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for candidate in (port, port + 1):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sockets.append(sock)
            sock.bind((ip, candidate))
    except OSError:
        return False
    finally:
        for sock in sockets:
            sock.close()
    return True
