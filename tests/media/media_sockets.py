"""Loopback sockets for the media tests."""

from __future__ import annotations

import socket

WAIT = 5.0


def free_port_pair(host: str) -> int:
    """An even port with port + 1 free as well (RTP and RTCP)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first:
            first.bind((host, 0))
            port = int(first.getsockname()[1])
            if port % 2 or port >= 65534:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second:
                try:
                    second.bind((host, port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair")


def endpoint_socket(host: str) -> socket.socket:
    """A bound UDP socket standing for a peer's media endpoint."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(WAIT)
    return sock
