"""A small RTP endpoint for tests: sends paced G.711 packets, records what arrives."""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

RTP_HEADER = struct.Struct("!BBHII")
PAYLOAD = b"\xff" * 160  # 20 ms of PCMU silence: 172-byte packets


@dataclass
class Received:
    seq: int
    ssrc: int
    payload_type: int
    source: tuple[str, int]
    timestamp: int = 0
    payload: bytes = b""
    data: bytes = field(default=b"", repr=False)  # the whole packet


@dataclass
class RtpEndpoint:
    """Bound on (ip, port); ``send`` paces packets to a destination while a
    background thread collects everything that arrives (bounded)."""

    ip: str
    port: int = 0
    ssrc: int = 0x1234
    payload_type: int = 0
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.ip, self.port))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            if len(data) >= RTP_HEADER.size:
                _first, second, seq, ts, ssrc = RTP_HEADER.unpack_from(data)
                payload = data[RTP_HEADER.size :]
                self.received.append(Received(seq, ssrc, second & 0x7F, source, ts, payload, data))

    def send(self, dest: tuple[str, int], count: int, interval: float = 0.01) -> None:
        for seq in range(count):
            header = RTP_HEADER.pack(0x80, self.payload_type, seq, seq * 160, self.ssrc)
            self.sock.sendto(header + PAYLOAD, dest)
            time.sleep(interval)

    def send_payloads(
        self, dest: tuple[str, int], payloads: list[bytes], step: int, interval: float = 0.01
    ) -> None:
        """Send ``payloads`` as RTP of this endpoint's payload type, timestamps ``step`` apart."""
        for seq, payload in enumerate(payloads):
            header = RTP_HEADER.pack(0x80, self.payload_type, seq, seq * step, self.ssrc)
            self.sock.sendto(header + payload, dest)
            time.sleep(interval)

    def send_raw(self, dest: tuple[str, int], packets: list[bytes], interval: float = 0.01) -> None:
        for packet in packets:
            self.sock.sendto(packet, dest)
            time.sleep(interval)

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


_C_LINE = re.compile(r"^c=IN IP4 (\S+)", re.M)
_M_LINE = re.compile(r"^m=audio (\d+) ", re.M)


def sdp_media_address(
    message_file: Path, first_line: str, timeout: float = 10.0
) -> tuple[str, int]:
    """Poll a live SIPp message log for the first message starting with
    ``first_line`` that carries SDP; return its audio address."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = message_file.read_text(errors="replace") if message_file.exists() else ""
        for block in text.split("\n\n" + "-" * 10):
            start = block.find(first_line)
            if start < 0:
                continue
            body = block[start:]
            c_line, m_line = _C_LINE.search(body), _M_LINE.search(body)
            if c_line and m_line:
                return c_line.group(1), int(m_line.group(1))
        time.sleep(0.05)
    raise AssertionError(f"no SDP in a {first_line!r} message of {message_file}")
