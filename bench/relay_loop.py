"""The closed-loop UDP driver the relay benchmarks share (bench/srtp.py,
bench/dtmf.py, bench/transcode_relay.py): peer sockets, a free port for the
SBC side, and ``through``, which sends packets in bursts and waits for each
burst to arrive before the next, so the figure is what the relay sustains
rather than what the kernel queues.
"""

from __future__ import annotations

import asyncio
import socket
import time

BURST = 32
WAIT_S = 1.0  # a burst not complete after this is counted as lost


def udp_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def through(
    sender: socket.socket,
    sink: socket.socket,
    to: tuple[str, int],
    packets: list[bytes],
    burst_size: int = BURST,
) -> tuple[float, int]:
    """Closed-loop: seconds to relay ``packets`` in bursts, and how many were lost."""
    loop = asyncio.get_running_loop()
    state = {"got": 0}
    arrived = asyncio.Event()

    def readable() -> None:
        while True:
            try:
                sink.recv(2048)
            except BlockingIOError:
                break
            state["got"] += 1
        arrived.set()

    loop.add_reader(sink.fileno(), readable)
    lost = 0
    start = time.perf_counter()
    try:
        for first in range(0, len(packets), burst_size):
            burst = packets[first : first + burst_size]
            state["got"] = 0
            for packet in burst:
                sender.sendto(packet, to)
            while state["got"] < len(burst):
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), WAIT_S)
                except TimeoutError:
                    lost += len(burst) - state["got"]
                    break
    finally:
        loop.remove_reader(sink.fileno())
    return time.perf_counter() - start, lost
